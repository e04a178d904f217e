"""rules.fast_expr gives what simpleeval gives: the same value, or the same error, for every
expression it compiles; and it compiles only its subset."""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from rules_helpers import ev
from simpleeval import EvalWithCompoundTypes

from rules.context import Ctx
from rules.fast_expr import compile_fast

FUNCTIONS: dict[str, Callable[..., Any]] = {"len": len, "lower": lambda s: str(s).lower()}
TZ = ZoneInfo("Asia/Shanghai")
LABELS = {"d1": {"zone": "north", "household": "h7", "place": "gate"}}

EVENTS = [
    ev("heartbeat", 0, kind="alarm", battery_pct=15),
    ev("panic", 5, kind="alarm", household="h7"),
    ev("access_denied", 9, kind="access", door="east", direction="in"),
    ev("plate_read", 30, kind="gate", plate="京A12345", confidence=0.93, direction="out"),
    ev("intrusion", 60, "cam9", kind="perimeter", zone="z1", label="person", confidence=0.8),
    ev("motion", 61, "d1", kind="perimeter", extra={"x": 3, "mode": "night"}),
]

ATOMS = [
    "kind", "type", "site", "device_id", "zone", "hour", "weekday", "attributes", "extra",
    "device", "nosuch", "len",
    "attributes.battery_pct", "attributes.confidence", "attributes.zone", "attributes.door",
    "attributes.kind", "attributes.nosuch", "attributes._private", "attributes.model_dump",
    "attributes.format", "device.zone", "device.household", "device.nosuch", "extra.x",
    "extra.mode", "type.upper", "kind.nosuch.deeper",
    "None", "True", "False", "0", "20", "0.9", "-3", "'alarm'", "'panic'", "'north'", "'z1'",
    "('a', 'b')", "[1, 2]", "len(device_id)", "hour + 1", "lower(type)",
]  # fmt: skip
OPS = ["==", "!=", "<", "<=", ">", ">=", "is", "is not", "in", "not in"]

expressions = st.recursive(
    st.sampled_from(ATOMS),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(OPS), inner).map(lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        st.tuples(
            inner, st.sampled_from(["<", "=="]), inner, st.sampled_from(["<", "!="]), inner
        ).map(lambda t: f"({t[0]}) {t[1]} ({t[2]}) {t[3]} ({t[4]})"),
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
            lambda t: f"({t[0]}) {t[1]} ({t[2]})"
        ),
        inner.map(lambda e: f"not ({e})"),
    ),
    max_leaves=8,
)


def outcome(fn: Callable[[dict[str, Any]], Any], names: dict[str, Any]) -> tuple[Any, ...]:
    try:
        value = fn(names)
    except Exception as exc:
        return ("error", type(exc).__name__, str(exc))
    return ("value", type(value), value)


def both(expr: str) -> tuple[Callable[[dict[str, Any]], Any] | None, Callable[..., Any]]:
    evaluator = EvalWithCompoundTypes(functions=FUNCTIONS)
    parsed = ast.parse(expr.strip(), mode="eval").body

    def slow(names: dict[str, Any]) -> Any:
        evaluator.names = names
        return evaluator.eval(expr, previously_parsed=parsed)

    return compile_fast(parsed, evaluator, expr), slow


@settings(max_examples=600, deadline=None)
@given(expr=expressions, which=st.integers(0, len(EVENTS) - 1))
def test_compiled_expressions_answer_as_simpleeval_does(expr: str, which: int) -> None:
    fast, slow = both(expr)
    names = Ctx(EVENTS[which], LABELS.get, TZ).names()
    if fast is not None:
        assert outcome(fast, names) == outcome(slow, names)


def test_the_subset_is_compiled_and_the_rest_is_left_to_simpleeval() -> None:
    compiled = [
        "type == 'battery_low' or (attributes.battery_pct is not None and attributes.battery_pct < 20)",
        "not (zone in ('a', 'b')) and hour >= 22",  # a tuple literal is not compiled...
        "device.zone != 'north' and 1 < hour < 6",
    ]
    fast = [both(e)[0] is not None for e in compiled]
    assert fast == [True, False, True]
    for left_to_simpleeval in (
        "len(device_id) > 3",
        "hour + 1 > 3",
        "attributes._private is None",
        "attributes.format",
        "[1, 2]",
        "x if y else z",
    ):
        assert both(left_to_simpleeval)[0] is None, left_to_simpleeval


def test_errors_are_simpleeval_s() -> None:
    names = Ctx(EVENTS[0], LABELS.get, TZ).names()
    for expr in ("nosuch == 1", "attributes.nosuch is None", "kind.nosuch.deeper"):
        fast, slow = both(expr)
        assert fast is not None
        got = outcome(fast, names)
        assert got[0] == "error" and got == outcome(slow, names)
