"""The notification outbox, on the shared metadata (migration 0002).

One row per (incident, recipient, channel, occasion). A row is committed before it is sent;
its status then moves pending → sent, or retry … → dead (dead-letter). With several workers
on the database, a row is claimed before it is sent (``claimed_by``, ``claim_until``:
``gateway.notify.claims``). The first row of a
recipient carries the acknowledgement deadline (``ack_deadline``); an acknowledgement
is recorded on all of that recipient's rows for the incident.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    text,
)

from gateway.storage.tables import BigId, UtcDateTime, metadata

notifications = Table(
    "notifications",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("incident_id", BigId, ForeignKey("incidents.id"), nullable=False),
    Column(
        "occasion", String(16), nullable=False
    ),  # new|reminder|escalation|dispatch|cancel|acknowledged
    Column("route", String(100), nullable=False, default=""),
    Column("receiver", String(100), nullable=False, default=""),
    Column("target", String(32), nullable=False, default=""),
    Column("recipient_kind", String(32), nullable=False),
    Column("recipient_id", String(64), nullable=False),
    Column("recipient_name", String(100), nullable=False, default=""),
    Column("channel", String(80), nullable=False),
    Column("status", String(16), nullable=False),  # pending|sent|retry|dead|cancelled
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime),
    Column("ack_required", Boolean, nullable=False, default=False),
    Column("ack_deadline", UtcDateTime),
    Column("acked_at", UtcDateTime),
    Column("acked_by", String(100)),
    Column("escalated_at", UtcDateTime),
    Column("level", Integer, nullable=False, default=0),  # escalation rung
    Column("payload", JSON, nullable=False),
    # Who is sending it and until when the claim holds (migration 0012, ``claims``).
    Column("claimed_by", String(64)),
    Column("claim_until", UtcDateTime),
    Index("ix_notifications_incident", "incident_id"),
    Index("ix_notifications_due", "status", "next_attempt_at"),
    Index("ix_notifications_deadline", "ack_deadline"),
)

# Deadlines still counting (migration 0012): what the cluster sweep for passed ones reads.
OPEN_DEADLINE_WHERE = text("ack_required AND acked_at IS NULL AND escalated_at IS NULL")
Index(
    "ix_notifications_open_deadline",
    notifications.c.ack_deadline,
    postgresql_where=OPEN_DEADLINE_WHERE,
    sqlite_where=OPEN_DEADLINE_WHERE,
)
