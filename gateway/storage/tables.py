"""Table definitions (SQLAlchemy Core). Schema changes go through an Alembic migration."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")
UtcDateTime = DateTime(timezone=True)

sites = Table(
    "sites",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, default=""),
    Column("address", String(500), nullable=False, default=""),
)

devices = Table(
    "devices",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("site", String(64), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    Column("place", String(128)),
    Column("zone", String(64)),
    Column("household", String(64)),
    Column("camera", String(128)),
    Column("heartbeat_s", Integer),
    Column("registered", Boolean, nullable=False, default=True),
    Column("profile", String(100)),
    # None: from config/sites (or first seen); "console": added or edited in the console,
    # which the site files no longer overwrite (docs/web-console.md)
    Column("source", String(16)),
    # sia / gb28181 / password_env of the entry (the push protocols), as JSON; NULL: not
    # recorded (rows from before migration 0009)
    Column("protocols", JSON(none_as_null=True)),
    Column("online", Boolean),
    Column("last_seen_at", UtcDateTime),
    Column("last_event_type", String(32)),
    Column("battery_pct", Integer),
)

events = Table(
    "events",
    metadata,
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("event_id", String(128), nullable=False, unique=True),
    Column("site", String(64), nullable=False),
    Column("device_id", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("type", String(32), nullable=False),
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("attributes", JSON, nullable=False),
    Column("source", String(64), nullable=False, default=""),
    Column("raw", Text, nullable=False, default=""),
    Index("ix_events_site_occurred", "site", "occurred_at"),
    Index("ix_events_device_occurred", "device_id", "occurred_at"),
    Index("ix_events_type_occurred", "type", "occurred_at"),
)

quarantine = Table(
    "quarantine",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("received_at", UtcDateTime, nullable=False, index=True),
    Column("topic", String(512), nullable=False),
    Column("reason", String(32), nullable=False, index=True),
    Column("detail", String(1000), nullable=False, default=""),
    Column("device_id", String(128)),
    Column("raw", LargeBinary, nullable=False),
    Column("size", Integer, nullable=False),
)

# Every quarantined message counted, per reason and clock minute, whether its row was kept or
# only counted (the quarantine samples rows past a rate: gateway/ingest/quarantine.py).
quarantine_counts = Table(
    "quarantine_counts",
    metadata,
    Column("minute", UtcDateTime, primary_key=True),
    Column("reason", String(32), primary_key=True),
    Column("received", BigInteger, nullable=False),
    Column("kept", BigInteger, nullable=False),
)
