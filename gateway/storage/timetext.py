"""Event times as database text, fast: thousands of events a second share their second, so the
text up to the second is formatted once per second (``isoformat`` each time costs twice as
much, formatting a UTC offset only for it to be cut off or replaced)."""

from __future__ import annotations

from datetime import datetime

_PREFIXES: dict[tuple[int, int, int, int, int, int], str] = {}


def utc_text(value: datetime, suffix: str = "") -> str:
    """``YYYY-MM-DD HH:MM:SS.ffffff`` + ``suffix`` for a UTC time (Event guarantees UTC):
    SQLAlchemy's SQLite DATETIME format with no suffix, PostgreSQL's COPY text with ``+00``."""
    key = (value.year, value.month, value.day, value.hour, value.minute, value.second)
    prefix = _PREFIXES.get(key)
    if prefix is None:
        if len(_PREFIXES) >= 4096:
            _PREFIXES.clear()
        prefix = _PREFIXES[key] = value.isoformat(" ")[:19]
    return f"{prefix}.{value.microsecond:06d}{suffix}"
