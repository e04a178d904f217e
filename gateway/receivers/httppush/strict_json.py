"""JSON as devices must send it: one value per key, no NaN, bounded nesting, text storage
can hold. Every way it fails is a :class:`Refused` (400) with its reason."""

from __future__ import annotations

import json
from typing import Any

from gateway.ingest.reasons import Reason
from gateway.receivers.httppush.errors import Refused


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            # Two values for one key: parsers disagree on which wins, so neither is taken.
            raise Refused(400, Reason.DUPLICATE_KEY, f"key {key[:60]!r} appears twice")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise Refused(400, Reason.MALFORMED_JSON, f"{name} is not JSON")


def _check(value: Any, max_depth: int) -> None:
    """Depth within ``max_depth``; no NUL and no lone surrogate in any key or string."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            if "\x00" in node:
                raise Refused(400, Reason.INVALID_TEXT, "contains NUL")
            try:
                node.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise Refused(400, Reason.INVALID_TEXT, f"lone surrogate at {exc.start}") from exc
            continue
        if depth > max_depth and isinstance(node, dict | list):
            raise Refused(400, Reason.TOO_DEEP, f"nesting depth > {max_depth}")
        if isinstance(node, dict):
            stack.extend((k, depth) for k in node)
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def parse_json(raw: bytes, *, max_depth: int = 32) -> Any:
    """The JSON value of ``raw`` (UTF-8, a BOM tolerated), or :class:`Refused`."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Refused(
            400, Reason.INVALID_UTF8, f"byte 0x{raw[exc.start]:02x} at offset {exc.start}"
        ) from exc
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except RecursionError as exc:
        raise Refused(400, Reason.TOO_DEEP, "nesting too deep to parse") from exc
    except ValueError as exc:  # JSONDecodeError
        raise Refused(400, Reason.MALFORMED_JSON, str(exc)[:200]) from exc
    _check(value, max_depth)
    return value
