"""The audit table (migration 0003). Append-only: the application only inserts; on SQLite
and PostgreSQL triggers refuse UPDATE and DELETE."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, String, Table

from gateway.storage.tables import UtcDateTime, metadata

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=False),  # 1, 2, 3, … no gaps
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("role", String(32), nullable=False, default=""),
    Column("source_ip", String(64), nullable=False, default=""),
    Column("action", String(200), nullable=False),
    Column("target", String(300), nullable=False, default=""),
    Column("status", Integer),
    Column("before", JSON),
    Column("after", JSON),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_actor", "actor"),
)
