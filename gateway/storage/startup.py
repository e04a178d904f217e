"""Start-up work that several workers on one PostgreSQL database must not do at once.

Workers started together would each migrate the schema, import the grid and seed the device
registry: two grid imports collide on the primary keys, two migrations on the same DDL. Each
of those transactions first takes one transaction-level advisory lock, so they run one after
the other and each sees what the one before it committed. SQLite (one process) needs none.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

# Any constant shared by every worker; "lianfang" in ASCII, to be recognisable in pg_locks.
STARTUP_LOCK_KEY = 0x6C69616E66616E67


def serialize_startup(conn: Connection) -> None:
    """Wait for, then hold until this transaction ends, the start-up lock (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": STARTUP_LOCK_KEY})


__all__ = ["STARTUP_LOCK_KEY", "serialize_startup"]
