"""Datetimes read back from the database."""

from __future__ import annotations

from datetime import UTC, datetime


def utc(value: datetime) -> datetime:
    """Aware UTC. SQLite returns naive datetimes (stored as UTC), PostgreSQL aware ones."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
