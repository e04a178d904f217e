"""decode_payload: orjson where it reads exactly as json does, json (with every failure named)
where it might not. Whatever the path, the value or the reason is json's."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.ingest.decode import Rejected, _decode_exactly, decode_payload
from gateway.ingest.reasons import Reason

LIMITS = {"max_bytes": 1 << 20, "max_depth": 32}


def outcome(fn: Any, raw: bytes, fmt: str) -> tuple[str, Any]:
    try:
        value = (
            fn(raw, fmt, **LIMITS) if fn is decode_payload else fn(raw, fmt, LIMITS["max_depth"])
        )
    except Rejected as exc:
        return "rejected", exc.reason
    return "value", json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=True)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(value=json_values, ascii_only=st.booleans(), fmt=st.sampled_from(["json", "json_or_text"]))
def test_json_documents_read_as_json_reads_them(value: Any, ascii_only: bool, fmt: str) -> None:
    raw = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")
    assert outcome(decode_payload, raw, fmt) == outcome(_decode_exactly, raw, fmt)


@settings(max_examples=400, deadline=None)
@given(raw=st.binary(max_size=60), fmt=st.sampled_from(["json", "json_or_text", "text"]))
def test_any_bytes_get_json_s_value_or_reason(raw: bytes, fmt: str) -> None:
    assert outcome(decode_payload, raw, fmt) == outcome(_decode_exactly, raw, fmt)


def test_long_integers_keep_every_digit() -> None:
    # orjson would read this as a float: the card number would change
    assert decode_payload(b'{"card": 123456789012345678901}', "json", **LIMITS) == {
        "card": 123456789012345678901
    }


def test_what_only_json_accepts_is_still_accepted() -> None:
    value = decode_payload(b'{"t": NaN, "big": 1e400}', "json", **LIMITS)
    assert math.isnan(value["t"]) and value["big"] == math.inf


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"[" * 2000 + b"]" * 2000, Reason.TOO_DEEP),  # beyond both parsers' own limits
        (b"[" * 40 + b"]" * 40, Reason.TOO_DEEP),  # beyond max_depth
        (b'{"a": "\\ud800"}', Reason.INVALID_TEXT),
        (b'{"a": "x\\u0000"}', Reason.INVALID_TEXT),
        (b'{"a": "\xff"}', Reason.INVALID_UTF8),
        (b'{"a": ', Reason.MALFORMED_JSON),
    ],
)
def test_hostile_payloads_are_rejected_with_their_reason(raw: bytes, reason: Reason) -> None:
    with pytest.raises(Rejected) as caught:
        decode_payload(raw, "json", **LIMITS)
    assert caught.value.reason is reason


# -- duplicate keys ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b'{"action":"emergency","action":null}',
        b'{"v": 1, "attrs": {"door": "1", "door": "2"}}',
        b'[{"a": 1}, {"b": 1, "b": 1}]',  # even the same value twice
        b'{"t": "12:00:00", "x": {"k": 1, "k": 2}}',  # colons inside strings too
        b'{"a": "\\u003a", "a": 1}',  # an escaped colon cannot hide a dropped one
        b'{"\\u0061": 1, "a": 2}',  # the same key, written two ways
    ],
)
@pytest.mark.parametrize("fmt", ["json", "json_or_text"])
def test_a_duplicated_key_is_refused(raw: bytes, fmt: str) -> None:
    with pytest.raises(Rejected) as caught:
        decode_payload(raw, fmt, **LIMITS)
    assert caught.value.reason is Reason.DUPLICATE_KEY
    assert "appears twice" in caught.value.detail


def test_colons_in_strings_and_keys_are_not_duplicates() -> None:
    raw = b'{"ts": "2026-11-22T21:03:00+08:00", "a:b": "x:y:z", "n": [{"c": ":"}]}'
    assert decode_payload(raw, "json", **LIMITS) == {
        "ts": "2026-11-22T21:03:00+08:00",
        "a:b": "x:y:z",
        "n": [{"c": ":"}],
    }


def loads_with_pairs(raw: bytes) -> Any:
    """The reference: json's own reading, with every key of every object seen."""

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in pairs}) != len(pairs):
            raise KeyError("duplicate")
        return dict(pairs)

    return json.loads(raw, object_pairs_hook=hook)


# A document as pairs, so that keys may repeat: written out by hand below.
keys = st.sampled_from(["a", "b", "a:b", ":", "ts", "キー", "\U0001f600"])
documents = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-1000, 1000)
    | st.sampled_from(["", "x:y", ":", "12:00"]),
    lambda inner: (
        st.lists(inner, max_size=4).map(lambda v: ("list", v))
        | st.lists(st.tuples(keys, inner), max_size=4).map(lambda v: ("object", v))
    ),
    max_leaves=20,
)


def write(doc: Any, ascii_only: bool, escape_colons: bool) -> str:
    def text(s: str) -> str:
        out = json.dumps(s, ensure_ascii=ascii_only)
        return out.replace(":", "\\u003a") if escape_colons else out

    if isinstance(doc, tuple) and doc[0] == "list":
        return "[" + ", ".join(write(v, ascii_only, escape_colons) for v in doc[1]) + "]"
    if isinstance(doc, tuple) and doc[0] == "object":
        return (
            "{"
            + ", ".join(f"{text(k)}: {write(v, ascii_only, escape_colons)}" for k, v in doc[1])
            + "}"
        )
    return text(doc) if isinstance(doc, str) else json.dumps(doc)


@settings(max_examples=400, deadline=None)
@given(doc=documents, ascii_only=st.booleans(), escape_colons=st.booleans())
def test_duplicates_are_found_on_either_path_exactly_when_json_sees_them(
    doc: Any, ascii_only: bool, escape_colons: bool
) -> None:
    raw = write(doc, ascii_only, escape_colons).encode()
    try:
        expected: Any = ("value", loads_with_pairs(raw))
    except KeyError:
        expected = ("rejected", Reason.DUPLICATE_KEY)
    got = outcome(decode_payload, raw, "json")
    assert got[0] == expected[0]
    if expected[0] == "rejected":
        assert got[1] is Reason.DUPLICATE_KEY
    else:
        assert got[1] == json.dumps(expected[1], sort_keys=True, ensure_ascii=False)


@settings(max_examples=400, deadline=None)
@given(value=json_values, cut=st.integers(0, 400), fmt=st.sampled_from(["json", "json_or_text"]))
def test_documents_cut_short_get_json_s_reason(value: Any, cut: int, fmt: str) -> None:
    # orjson's "unexpected end of data" is taken as json's refusal without asking json
    raw = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    raw = raw[: cut % (len(raw) + 1)]
    assert outcome(decode_payload, raw, fmt) == outcome(_decode_exactly, raw, fmt)
