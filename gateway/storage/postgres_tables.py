"""Tables only PostgreSQL has (migration 0009), on their own metadata: the shared one is what
SQLite is built from and checked against."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, MetaData, String, Table

from gateway.storage.tables import UtcDateTime

postgres_metadata = MetaData()

# One row per stored event id: what makes a redelivery a no-op (docs/datapool.md).
event_keys = Table(
    "event_keys",
    postgres_metadata,
    Column("event_id", String(128), primary_key=True),
    Column("occurred_at", UtcDateTime, nullable=False),
)

# Events per compound, UTC hour and kind, kept by the writer: the cockpit's counts.
event_counts = Table(
    "event_counts",
    postgres_metadata,
    Column("site", String(64), primary_key=True),
    Column("hour", UtcDateTime, primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("n", BigInteger, nullable=False),
)
