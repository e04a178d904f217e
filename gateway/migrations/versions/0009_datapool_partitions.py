"""district data pool: events partitioned by month on PostgreSQL, a table of event ids for
redeliveries, indexes for the district's questions (SQLite keeps its layout)

Revision ID: 0009
Revises: 0008

PostgreSQL only (docs/datapool.md says why each piece is there):

- ``events`` becomes a table partitioned by range of ``occurred_at``: one partition a month
  (``events_pYYYYMMDD``, named after its first day, UTC), created ahead by the gateway, and
  ``events_old`` for everything before the first month (events an incident keeps after
  their month was dropped, and devices with clocks in the past). ``seq`` keeps its sequence,
  so cursors handed out before the migration stay valid; the primary key becomes
  ``(seq, occurred_at)`` because a partitioned table's unique keys must hold its key.
- ``event_keys`` (``event_id`` primary key, ``occurred_at``) is what makes a redelivery a
  no-op: it is not partitioned, so an id is unique across all months even when the
  redelivery's ``occurred_at`` is its own receipt time (devices without a clock).
- ``event_counts`` (site, UTC hour, kind → n): the cockpit's counts, kept up by the writer
  in the transaction that stores the events, filled here from the rows copied.
- indexes on every partition: ``event_id`` (hash: equality look-ups only), ``(site,
  occurred_at) INCLUDE (kind)`` (a compound's counts from the index alone), ``(device_id,
  occurred_at)``, ``(type, occurred_at)``, and partial ones for the traces: the plate of
  gate events, the card and the person reference of access events (rows that have one).

Every row is copied (and counted: the migration fails rather than lose one). Downgrade
copies them back into a plain table.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

MONTHS_BACK = 13  # rows older than this go to events_old; newer months get a partition
MONTHS_AHEAD = 2  # partitions created ahead of the current month

_COLUMNS = (
    "seq, event_id, site, device_id, kind, type, occurred_at, received_at, attributes, source, raw"
)

_INDEXES = (
    "CREATE INDEX ix_events_event_id ON events USING hash (event_id)",
    "CREATE INDEX ix_events_site_occurred ON events (site, occurred_at) INCLUDE (kind)",
    "CREATE INDEX ix_events_device_occurred ON events (device_id, occurred_at)",
    "CREATE INDEX ix_events_type_occurred ON events (type, occurred_at)",
    # Partial: only rows that can match (kind first, so other rows' JSON is never parsed).
    "CREATE INDEX ix_events_plate ON events ((attributes ->> 'plate'), occurred_at)"
    " WHERE kind = 'gate' AND (attributes ->> 'plate') IS NOT NULL",
    "CREATE INDEX ix_events_card ON events ((attributes ->> 'card_ref'), occurred_at)"
    " WHERE kind = 'access' AND (attributes ->> 'card_ref') IS NOT NULL",
    "CREATE INDEX ix_events_person ON events ((attributes ->> 'person_ref'), occurred_at)"
    " WHERE kind = 'access' AND (attributes ->> 'person_ref') IS NOT NULL",
)


# Events per compound, UTC hour and kind: the cockpit's counts (the writer keeps them up).
COUNT_EVENTS_BY_HOUR = (
    "SELECT site, timezone('UTC', date_trunc('hour', timezone('UTC', occurred_at))), kind,"
    " count(*) FROM events GROUP BY 1, 2, 3"
)


def _month(t: datetime, add: int = 0) -> datetime:
    index = t.year * 12 + t.month - 1 + add
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return  # SQLite keeps one events table
    execute = bind.exec_driver_sql
    execute("SET LOCAL TimeZone = 'UTC'")
    before = execute("SELECT count(*), min(occurred_at) FROM events").one()
    count, oldest = int(before[0]), before[1]
    now = datetime.now(UTC)
    first = _month(now, -MONTHS_BACK)
    if oldest is not None and oldest > first:
        first = _month(oldest)
    first = min(first, _month(now))

    execute("ALTER TABLE events RENAME TO events_unpartitioned")
    execute(
        "ALTER TABLE events_unpartitioned RENAME CONSTRAINT pk_events TO pk_events_unpartitioned"
    )
    execute(
        "ALTER TABLE events_unpartitioned RENAME CONSTRAINT uq_events_event_id"
        " TO uq_events_unpartitioned_event_id"
    )
    for name in ("site_occurred", "device_occurred", "type_occurred"):
        execute(f"DROP INDEX ix_events_{name}")
    execute("ALTER SEQUENCE events_seq_seq OWNED BY NONE")
    execute(
        """
        CREATE TABLE events (
            seq BIGINT NOT NULL DEFAULT nextval('events_seq_seq'),
            event_id VARCHAR(128) NOT NULL,
            site VARCHAR(64) NOT NULL,
            device_id VARCHAR(128) NOT NULL,
            kind VARCHAR(16) NOT NULL,
            type VARCHAR(32) NOT NULL,
            occurred_at TIMESTAMP WITH TIME ZONE NOT NULL,
            received_at TIMESTAMP WITH TIME ZONE NOT NULL,
            attributes JSON NOT NULL,
            source VARCHAR(64) NOT NULL,
            raw TEXT NOT NULL,
            CONSTRAINT pk_events PRIMARY KEY (seq, occurred_at)
        ) PARTITION BY RANGE (occurred_at)
        """
    )
    execute(
        "CREATE TABLE events_old PARTITION OF events"
        f" FOR VALUES FROM (MINVALUE) TO ('{first.isoformat()}')"
    )
    start, last = first, _month(now, MONTHS_AHEAD)
    while start <= last:
        end = _month(start, 1)
        execute(
            f"CREATE TABLE events_p{start:%Y%m%d} PARTITION OF events"
            f" FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
        start = end
    execute(
        """
        CREATE TABLE event_keys (
            event_id VARCHAR(128) NOT NULL,
            occurred_at TIMESTAMP WITH TIME ZONE NOT NULL,
            CONSTRAINT pk_event_keys PRIMARY KEY (event_id)
        )
        """
    )
    # Loaded before the indexes are built: one sort per index instead of row-by-row inserts.
    execute(f"INSERT INTO events ({_COLUMNS}) SELECT {_COLUMNS} FROM events_unpartitioned")
    execute(
        "INSERT INTO event_keys (event_id, occurred_at)"
        " SELECT event_id, occurred_at FROM events_unpartitioned"
    )
    copied = int(execute("SELECT count(*) FROM events").scalar_one())
    if copied != count:  # pragma: no cover - the database would have to lose rows
        raise RuntimeError(f"events: {count} rows before, {copied} after partitioning")
    for statement in _INDEXES:
        execute(statement)
    # Ranges for the retention's key deletes: keys arrive in about time order, so a BRIN
    # index stays small and cheap to keep up.
    execute("CREATE INDEX ix_event_keys_occurred ON event_keys USING brin (occurred_at)")
    execute(
        """
        CREATE TABLE event_counts (
            site VARCHAR(64) NOT NULL,
            hour TIMESTAMP WITH TIME ZONE NOT NULL,
            kind VARCHAR(16) NOT NULL,
            n BIGINT NOT NULL,
            CONSTRAINT pk_event_counts PRIMARY KEY (site, hour, kind)
        )
        """
    )
    execute(f"INSERT INTO event_counts (site, hour, kind, n) {COUNT_EVENTS_BY_HOUR}")
    execute("DROP TABLE events_unpartitioned")
    execute("ALTER SEQUENCE events_seq_seq OWNED BY events.seq")
    execute("ANALYZE events")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    execute = bind.exec_driver_sql
    count = int(execute("SELECT count(*) FROM events").scalar_one())
    execute("ALTER SEQUENCE events_seq_seq OWNED BY NONE")
    execute("ALTER TABLE events RENAME TO events_partitioned")
    execute("ALTER TABLE events_partitioned RENAME CONSTRAINT pk_events TO pk_events_partitioned")
    for name in ("event_id", "site_occurred", "device_occurred", "type_occurred"):
        execute(f"DROP INDEX ix_events_{name}")
    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=128), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_events"),
        sa.UniqueConstraint("event_id", name="uq_events_event_id"),
    )
    execute(f"INSERT INTO events ({_COLUMNS}) SELECT {_COLUMNS} FROM events_partitioned")
    copied = int(execute("SELECT count(*) FROM events").scalar_one())
    if copied != count:  # pragma: no cover
        raise RuntimeError(f"events: {count} rows before, {copied} after the downgrade")
    execute("ALTER TABLE events ALTER COLUMN seq SET DEFAULT nextval('events_seq_seq')")
    execute("ALTER SEQUENCE events_seq_seq OWNED BY events.seq")
    op.create_index("ix_events_device_occurred", "events", ["device_id", "occurred_at"])
    op.create_index("ix_events_site_occurred", "events", ["site", "occurred_at"])
    op.create_index("ix_events_type_occurred", "events", ["type", "occurred_at"])
    execute("DROP TABLE events_partitioned")
    execute("DROP TABLE event_keys")
    execute("DROP TABLE event_counts")
