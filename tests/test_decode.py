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
