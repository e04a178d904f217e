"""Account tables, on the shared ``gateway.storage.tables.metadata`` (migration 0003).

Secrets are never stored: passwords as argon2id hashes, session ids and API token secrets as
SHA-256 digests (they are 256-bit random strings, so a fast hash is enough).
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Index, Integer, String, Table

from gateway.storage.tables import UtcDateTime, metadata

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("display_name", String(100), nullable=False, default=""),
    Column("password_hash", String(200)),  # None: token-only account (integration)
    Column("role", String(32), nullable=False),
    Column("person_id", String(64)),  # grid person: their scopes apply
    Column("household_id", String(64)),  # residents
    Column("scopes", JSON, nullable=False),  # {"streets": [...], "sites": [...], ...}
    Column("active", Boolean, nullable=False, default=True),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), nullable=False, index=True),
    Column("name", String(100), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("permissions", JSON, nullable=False),  # a subset of the owner's role
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime),
    Column("revoked_at", UtcDateTime),
    Column("last_used_at", UtcDateTime),
)

auth_sessions = Table(
    "auth_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("user_id", String(32), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("source_ip", String(64), nullable=False, default=""),
    Index("ix_auth_sessions_user", "user_id"),
    Index("ix_auth_sessions_expires", "expires_at"),
)

AUTH_TABLES = (users, api_tokens, auth_sessions)
