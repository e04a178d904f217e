"""Incident tables, on the shared ``gateway.storage.tables.metadata`` (migration 0002).

The timeline is append-only: rows are inserted, never updated or deleted; the incident row
holds the current stage and a few denormalised fields for listing.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    func,
    literal_column,
    text,
)

from gateway.storage.tables import BigId, UtcDateTime, metadata

incidents = Table(
    "incidents",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("source", String(16), nullable=False),  # rule | manual | hazard
    Column("category", String(32), nullable=False),
    Column("severity", String(4), nullable=False),
    Column("title_zh", String(300), nullable=False),
    Column("title_en", String(300), nullable=False, default=""),
    Column("description", Text, nullable=False, default=""),
    Column("stage", String(16), nullable=False),
    Column("site", String(64)),
    Column("cell", String(64)),
    Column("community", String(64)),
    Column("place", String(64)),
    Column("device_id", String(128)),
    Column("household", String(64)),
    Column("location", JSON),  # {"lat", "lon", "address"} for reports
    Column("rule_id", String(64)),
    Column("group_key", String(300)),
    Column("signal_state", String(16)),  # firing | resolved | cancelled
    Column("labels", JSON, nullable=False),
    Column("event_ids", JSON, nullable=False),  # the newest, bounded
    Column("event_count", Integer, nullable=False, default=0),
    Column("signal_count", Integer, nullable=False, default=0),
    Column("assignees", JSON, nullable=False),
    Column("reporter", String(100)),
    Column("score", Integer),
    Column("evaluation", Text),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("acked_at", UtcDateTime),  # taken: the first acknowledgement with authority
    Column("acked_by", String(100)),  # (migration 0007)
    Column("closed_at", UtcDateTime),
    Column("last_notified_at", UtcDateTime),
    Index("ix_incidents_stage", "stage"),
    Index("ix_incidents_group", "rule_id", "group_key", "stage"),
    Index("ix_incidents_opened", "opened_at"),
    Index("ix_incidents_cell_opened", "cell", "opened_at"),
)

# Grouping, by constraint: at most one open incident per (rule, group key, site), whatever
# number of gateways share the database (``grouping``). The predicate names the open stages
# (``lifecycle.OPEN_STAGES``): a change to those needs a migration of this index.
OPEN_STAGE_VALUES = ("discovered", "dispatched", "handling", "feedback")
# Literal SQL (no bound parameters), so that ``INSERT … ON CONFLICT`` names this very index.
OPEN_GROUP = (
    incidents.c.rule_id,
    incidents.c.group_key,
    func.coalesce(incidents.c.site, literal_column("''")),
)
OPEN_GROUP_WHERE = text(f"stage IN ({', '.join(repr(v) for v in OPEN_STAGE_VALUES)})")
Index(
    "ux_incidents_open_group",
    *OPEN_GROUP,
    unique=True,
    sqlite_where=OPEN_GROUP_WHERE,
    postgresql_where=OPEN_GROUP_WHERE,
)

incident_signals = Table(
    "incident_signals",
    metadata,
    Column("signal_id", String(200), primary_key=True),
    Column("incident_id", BigId, ForeignKey("incidents.id"), nullable=False, index=True),
    Column("received_at", UtcDateTime, nullable=False),
)

incident_timeline = Table(
    "incident_timeline",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("incident_id", BigId, ForeignKey("incidents.id"), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("role", String(32), nullable=False, default=""),
    Column("action", String(16), nullable=False),
    Column("from_stage", String(16)),
    Column("to_stage", String(16)),
    Column("note", Text, nullable=False, default=""),
    Column("attachments", JSON, nullable=False),
    Column("data", JSON, nullable=False),
    Index("ix_incident_timeline_incident", "incident_id", "id"),
    Index("ix_incident_timeline_at", "at"),
)

incident_attachments = Table(
    "incident_attachments",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("incident_id", BigId, ForeignKey("incidents.id"), nullable=False, index=True),
    Column("filename", String(200), nullable=False),
    Column("content_type", String(32), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("uploaded_at", UtcDateTime, nullable=False),
    Column("uploaded_by", String(100), nullable=False),
)
