"""Compile a ``Selector`` once into a fast predicate plus the (kind, type) keys it can match.

Cheap structured checks run first; an ``expr`` (simpleeval, pre-parsed; the common subset
compiled by ``rules.fast_expr``) runs last.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from simpleeval import EvalWithCompoundTypes

from gateway.events import DeviceKind, EventType
from rules.context import Ctx
from rules.fast_expr import compile_fast
from rules.fields import compile_getter
from rules.model import Selector
from rules.watchlist import Watchlist

log = logging.getLogger(__name__)

Check = Callable[[Ctx], bool]
IndexKey = tuple[DeviceKind, EventType]
ALL_KEYS: tuple[IndexKey, ...] = tuple((k, t) for k in DeviceKind for t in EventType)


class ExpressionFailed(Exception):
    """An ``expr`` raised while evaluating one event (treated as no match and counted)."""


@dataclass(frozen=True)
class CompiledSelector:
    keys: tuple[IndexKey, ...]
    check: Check
    text: str  # short human description for explanations


def _describe(sel: Selector) -> str:
    parts: list[str] = []
    if sel.kind:
        parts.append("kind=" + "|".join(k.value for k in sel.kind))
    if sel.type:
        parts.append("type=" + "|".join(t.value for t in sel.type))
    for name, vals in sel.attributes.items():
        parts.append(f"{name}=" + "|".join(str(v) for v in vals))
    for name, labels in sel.device.items():
        parts.append(f"device.{name}=" + "|".join(labels))
    if sel.site:
        parts.append("site=" + "|".join(sel.site))
    if sel.device_id:
        parts.append("device_id=" + "|".join(sel.device_id))
    if sel.watchlist:
        parts.append(f"{sel.watchlist.field} on list {sel.watchlist.list}")
    if sel.expr:
        parts.append(f"expr: {sel.expr.strip()}")
    return ", ".join(parts) or "any event"


def _expression(expr: str, watchlists: Mapping[str, Watchlist]) -> Check:
    def in_list(name: str, value: object) -> bool:
        wl = watchlists.get(name)
        if wl is None:
            raise ExpressionFailed(f"unknown watch list {name!r}")
        return wl.contains(value)

    functions: dict[str, Callable[..., Any]] = {
        "in_list": in_list,
        "len": len,
        "lower": lambda s: str(s).lower(),
        "upper": lambda s: str(s).upper(),
        "startswith": lambda s, p: s is not None and str(s).startswith(p),
    }
    evaluator = EvalWithCompoundTypes(functions=functions)
    parsed = ast.parse(expr.strip(), mode="eval").body
    fast = compile_fast(parsed, evaluator, expr)
    if fast is not None:

        def check_fast(c: Ctx) -> bool:
            try:
                return bool(fast(c.names()))
            except Exception as exc:
                raise ExpressionFailed(f"{type(exc).__name__}: {exc}") from exc

        return check_fast

    def check(c: Ctx) -> bool:
        evaluator.names = c.names()
        try:
            return bool(evaluator.eval(expr, previously_parsed=parsed))
        except Exception as exc:
            raise ExpressionFailed(f"{type(exc).__name__}: {exc}") from exc

    return check


def compile_selector(sel: Selector, watchlists: Mapping[str, Watchlist]) -> CompiledSelector:
    """Compile; the caller has checked that watch-list ids exist."""
    kinds = tuple(sel.kind) if sel.kind else tuple(DeviceKind)
    types = tuple(sel.type) if sel.type else tuple(EventType)
    keys = tuple((k, t) for k in kinds for t in types)
    checks: list[Check] = []
    if sel.site:
        sites = frozenset(sel.site)
        checks.append(lambda c: c.event.site in sites)
    if sel.device_id:
        ids = frozenset(sel.device_id)
        checks.append(lambda c: c.event.device_id in ids)
    for name, values in sel.attributes.items():
        get = compile_getter(f"attributes.{name}")
        allowed = tuple(values)
        checks.append(lambda c, get=get, allowed=allowed: get(c) in allowed)  # type: ignore[misc]
    for label, wanted in sel.device.items():
        wanted_set = frozenset(wanted)
        checks.append(lambda c, label=label, ws=wanted_set: c.labels.get(label) in ws)  # type: ignore[misc]
    if sel.watchlist is not None:
        wl = watchlists[sel.watchlist.list]
        get_wl = compile_getter(sel.watchlist.field)
        checks.append(lambda c: wl.contains(get_wl(c)))
    if sel.expr is not None:
        checks.append(_expression(sel.expr, watchlists))

    if not checks:
        return CompiledSelector(keys, lambda c: True, _describe(sel))
    if len(checks) == 1:
        return CompiledSelector(keys, checks[0], _describe(sel))
    frozen = tuple(checks)

    def all_of(c: Ctx) -> bool:
        return all(chk(c) for chk in frozen)

    return CompiledSelector(keys, all_of, _describe(sel))
