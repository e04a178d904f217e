"""Decode payload bytes defensively.

The standard ``json`` module raises ``RecursionError`` on deep nesting and
``UnicodeDecodeError`` on bad bytes, not only ``JSONDecodeError``; and a ``\\ud800`` escape
parses into a lone surrogate that only fails later, at insert. All of those are caught here
and turned into a :class:`Rejected` with a reason.

Most payloads take orjson (a quarter of ``json.loads``' time here). It answers differently from
``json`` in a few cases, so those go to the exact path (``json``, then the checks above)
instead: any payload with a surrogate or NUL escape, or a run of 19 or more digits (orjson
reads integers beyond 64 bits as floats, and a card number must not change), and any payload
orjson refuses (NaN and Infinity, nesting beyond 1,024, bad UTF-8: ``json`` decides, and
names the reason). What either path accepts is the same value.

A key that appears twice in one object is refused (``duplicate_key``): both parsers would keep
the last value, so ``{"action": "emergency", "action": null}`` would read as no action at all.
The exact path sees every pair (``object_pairs_hook``). The fast path cannot, so it compares
colons: orjson writes the parsed value back with exactly one ``:`` per key it kept plus those
inside strings, and the payload has one per key it holds plus the same ones inside strings
(a ``:`` in a string can only be written literally, or as ``\u003a``, which takes the exact
path). Fewer colons back than in means a key was dropped: the exact path then names it.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from gateway.ingest.reasons import Reason

# A JSON escape of a UTF-16 surrogate, or of NUL (which PostgreSQL text cannot store), or of
# a colon (which would upset the duplicate-key check of the fast path).
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:[dD][89a-fA-F][0-9a-fA-F]{2}|0000|003[aA])")
# orjson reads an integer beyond 64 bits as a float. 19 digits in a row may already be one
# (any longer run of digits, in a string too, only costs the slower path). Digits become "0"
# and the rest " ", then one substring search: a tenth of what a regex of [0-9]{19} costs.
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_NUMBER = b"0" * 19


class Rejected(Exception):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _depth(value: Any, limit: int) -> int:
    """Nesting depth, stopping as soon as it passes ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > limit:
                return deepest
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, dict | list))
    return deepest


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise Rejected(Reason.INVALID_TEXT, "contains NUL")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise Rejected(Reason.INVALID_TEXT, f"lone surrogate at {exc.start}") from exc


def decode_payload(raw: bytes, fmt: str, *, max_bytes: int, max_depth: int) -> Any:
    """Bytes → JSON value (``json``), str (``text``), or either (``json_or_text``)."""
    if len(raw) > max_bytes:
        raise Rejected(Reason.OVERSIZE, f"{len(raw)} bytes > limit {max_bytes}")
    if fmt != "text":
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            # The exact path below says why, or takes what json accepts. A document cut
            # short (orjson read valid UTF-8 to its very end) is one json refuses too, with
            # the same reason, unless nested deep enough for json's RecursionError: a storm
            # of truncated payloads costs one parse each.
            if (
                fmt == "json"
                and exc.pos >= len(raw)
                and exc.msg.startswith("unexpected end of data")
                and raw.count(b"[") + raw.count(b"{") <= max_depth
            ):
                raise Rejected(Reason.MALFORMED_JSON, str(exc)[:200]) from None
        else:
            # orjson first: a malformed payload (a storm of them) skips these scans.
            if _SUSPECT_ESCAPE.search(raw) is None and _LONG_NUMBER not in raw.translate(
                _DIGITS_AS_ZERO
            ):
                _check_depth(raw, value, max_depth)
                try:  # no key lost (see the module doc); inline: every message passes here
                    if orjson.dumps(value).count(b":") == raw.count(b":"):
                        return value
                except orjson.JSONEncodeError:  # nesting beyond orjson's writer (> 254)
                    pass
                # a key was dropped (or cannot be written back): the exact path says which
    return _decode_exactly(raw, fmt, max_depth)


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json``: an object, unless a key appears twice in it."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise Rejected(Reason.DUPLICATE_KEY, f"key {key[:100]!r} appears twice")
            seen.add(key)
    return obj


# One decoder for every call: json.loads() with a hook builds a new one each time.
_STRICT = json.JSONDecoder(object_pairs_hook=_unique_pairs)


def loads_strict(raw: str | bytes) -> Any:
    """JSON text → value as ``json.loads`` reads them, but refusing a duplicated key
    (:class:`Rejected`); other failures raise as ``json.loads`` does. For JSON read from the
    network outside the ingest path (acknowledgements, receivers)."""
    return _STRICT.decode(raw if isinstance(raw, str) else raw.decode("utf-8"))


def _check_depth(raw: bytes, value: Any, max_depth: int) -> None:
    # Cheap bound first (C-speed byte counts); walk the tree only when it could be too deep.
    if raw.count(b"{") + raw.count(b"[") > max_depth:
        depth = _depth(value, max_depth)
        if depth > max_depth:
            raise Rejected(Reason.TOO_DEEP, f"nesting depth > {max_depth}")


def _decode_exactly(raw: bytes, fmt: str, max_depth: int) -> Any:
    """The standard library's reading, with every way it fails named."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(
            Reason.INVALID_UTF8, f"byte 0x{raw[exc.start]:02x} at offset {exc.start}"
        ) from exc
    if fmt == "text":
        text = text.strip()
        _check_text(text)
        return text
    try:
        value = _STRICT.decode(text)
    except Rejected:
        raise  # a duplicated key: JSON, but refused (never read as text either)
    except RecursionError as exc:
        raise Rejected(Reason.TOO_DEEP, "nesting too deep to parse") from exc
    except ValueError as exc:  # JSONDecodeError is a ValueError
        if fmt == "json_or_text":
            text = text.strip()
            _check_text(text)
            return text
        raise Rejected(Reason.MALFORMED_JSON, str(exc)[:200]) from exc
    _check_depth(raw, value, max_depth)
    if _SUSPECT_ESCAPE.search(raw):
        _check_strings(value)
    return value


def _check_strings(value: Any) -> None:
    """Every key and string in a parsed document: no NUL, no lone surrogate."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            _check_text(node)
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
