"""Opaque pagination cursors.

A cursor is URL-safe base64 of a small JSON object naming the listing it belongs to and the
key of the last item returned. Clients must treat it as an opaque string: the encoding may
change between versions.
"""

from __future__ import annotations

import base64
import binascii
import json


class InvalidCursor(ValueError):
    """The cursor is not one this listing handed out."""


def encode_cursor(listing: str, after: int | str) -> str:
    data = json.dumps({"v": 1, "l": listing, "a": after}, separators=(",", ":"))
    return base64.urlsafe_b64encode(data.encode()).decode().rstrip("=")


def _decode(token: str, listing: str) -> object:
    if not token or len(token) > 512:
        raise InvalidCursor("cursor is empty or too long")
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise InvalidCursor("cursor is not valid: pass back next_cursor unchanged") from exc
    if not isinstance(data, dict) or data.get("v") != 1 or "a" not in data:
        raise InvalidCursor("cursor is not valid: pass back next_cursor unchanged")
    if data.get("l") != listing:
        raise InvalidCursor(f"cursor belongs to another listing, not {listing}")
    return data["a"]


def decode_int_cursor(token: str, listing: str) -> int:
    after = _decode(token, listing)
    if isinstance(after, bool) or not isinstance(after, int):
        raise InvalidCursor("cursor is not valid: pass back next_cursor unchanged")
    return after


def decode_str_cursor(token: str, listing: str) -> str:
    after = _decode(token, listing)
    if not isinstance(after, str):
        raise InvalidCursor("cursor is not valid: pass back next_cursor unchanged")
    return after
