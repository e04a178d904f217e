"""The audit table (migration 0003). Append-only: the application only inserts; on SQLite
and PostgreSQL triggers refuse UPDATE and DELETE."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Column, ColumnElement, Index, Integer, String, Table, or_

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
    # migration 0006: rows about one path (an incident's, a household's reveals); on
    # PostgreSQL with the pattern operator class, so a prefix LIKE is served too
    Index("ix_audit_log_target", "target", postgresql_ops={"target": "varchar_pattern_ops"}),
)


def target_is_or_under(path: str, dialect: str) -> ColumnElement[bool]:
    """Rows about ``path`` or a path below it (``path/…``), written so that the target index
    serves both terms: on PostgreSQL a prefix ``LIKE`` (the index has ``varchar_pattern_ops``;
    backslash is PostgreSQL's default LIKE escape), on SQLite a prefix ``GLOB`` (SQLite's LIKE
    ignores case, so its BINARY index cannot serve it; GLOB is case-sensitive, as paths are).
    ``dialect`` is the engine's ``dialect.name``."""
    target = audit_log.c.target
    if dialect == "sqlite":
        glob = "".join(f"[{ch}]" if ch in "*?[" else ch for ch in path)
        below = target.op("GLOB", is_comparison=True)(f"{glob}/*")
    else:
        like = "".join(f"\\{ch}" if ch in "\\%_" else ch for ch in path)
        below = target.like(f"{like}/%")
    return or_(target == path, below)
