"""Engine creation (SQLite in WAL mode, or PostgreSQL) and schema migration. A SQLite
database and its WAL files are created owner-only (0600)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from gateway.storage.files import private_dir, touch_private
from gateway.storage.startup import serialize_startup

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

log = logging.getLogger(__name__)

# How long a SQLite write waits for a lock held by another connection before it fails with
# "database is locked" (the writers then retry with backoff: docs/database-outage.md).
SQLITE_BUSY_TIMEOUT_S = 30.0


def make_engine(url: str, **kwargs: Any) -> Engine:
    """SQLite gets WAL, NORMAL sync (durable at checkpoint, safe with WAL) and a busy timeout."""
    parsed = make_url(url)
    # Statement parameters never appear in error messages (and so in no log line): they
    # hold password hashes, token digests and personal data.
    kwargs.setdefault("hide_parameters", True)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            private_dir(Path(database).parent)
            for suffix in ("", "-wal", "-shm"):  # owner-only, also when made by an older run
                path = Path(database + suffix)
                if suffix == "" and not path.exists():
                    touch_private(path)
                elif path.exists() and path.stat().st_mode & 0o077:
                    with contextlib.suppress(PermissionError):  # another owner's: theirs to fix
                        path.chmod(0o600)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
            **kwargs,
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            # No checkpoint inside a commit: it fsyncs the database file, and the commit that
            # crossed the threshold could be an alarm's. The batch writer checkpoints instead
            # (BatchWriter.checkpoint_every_s); the last connection to close checkpoints too.
            cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        serialize_startup(conn)  # workers starting together migrate one after the other
        before = MigrationContext.configure(conn).get_current_revision()
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
        after = MigrationContext.configure(conn).get_current_revision()
    if before != after:
        log.info("database schema: %s -> %s", before or "new", after)
