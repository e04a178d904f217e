"""The hash-chained, append-only audit log.

Each row carries ``prev_hash`` (the previous row's ``hash``; 64 zeros for row 1) and
``hash = HMAC-SHA256(key, canonical JSON of the row including id and prev_hash)``. The key
comes from ``LIANFANG_AUDIT_KEY`` or a 0600 file, never from the database, so whoever can
write the database still cannot forge a row that verifies. Row ids are 1, 2, 3, … without
gaps, so a deleted row shows as a gap and a moved row as a broken link.

``verify`` reports the first row that fails. What a chain alone cannot show: rows removed
from the *end* (keep a copy of ``head()`` elsewhere to catch that).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, text

from gateway.audit.tables import audit_log

GENESIS = "0" * 64
KEY_ENV = "LIANFANG_AUDIT_KEY"
_lock = threading.RLock()  # one writer at a time in this process (PostgreSQL adds a lock)


class AuditKeyError(RuntimeError):
    pass


def load_audit_key(data_dir: Path | None = None) -> bytes:
    """``LIANFANG_AUDIT_KEY``, else ``<data_dir>/audit.key`` (created 0600, refused when
    readable by group or others)."""
    env = os.environ.get(KEY_ENV)
    if env:
        return env.encode()
    if data_dir is None:
        raise AuditKeyError(f"{KEY_ENV} is not set and no data directory to keep a key in")
    path = data_dir / "audit.key"
    if not path.exists():
        import secrets

        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuditKeyError(f"{path} must not be readable by group/others (chmod 600)")
    return path.read_text().strip().encode()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One state-changing action: who (actor, role), from where, what, before/after."""

    actor: str
    action: str
    role: str = ""
    source_ip: str = ""
    target: str = ""
    status: int | None = None
    before: Any = None
    after: Any = None


def _ts(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _digest(key: bytes, row: dict[str, Any]) -> str:
    body = {
        "id": int(row["id"]),
        "at": _ts(row["at"]),
        "actor": row["actor"],
        "role": row["role"] or "",
        "source_ip": row["source_ip"] or "",
        "action": row["action"],
        "target": row["target"] or "",
        "status": row["status"],
        "before": row["before"],
        "after": row["after"],
        "prev_hash": row["prev_hash"],
    }
    canonical = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def _jsonable(value: Any) -> Any:
    """Round-trip through JSON so the stored value hashes like the value read back."""
    if value is None:
        return None
    return json.loads(json.dumps(value, ensure_ascii=False, default=str))


class AuditLog:
    """Appends to and verifies the chain of one database."""

    def __init__(self, engine: Engine, key: bytes) -> None:
        if not key:
            raise AuditKeyError("empty audit key")
        self.engine = engine
        self.key = key

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A transaction that may append audit rows (``append_in``): holds the chain's lock
        until commit, so two writers never chain to the same row."""
        with _lock, self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(7361, 1)"))
            yield conn

    def append(self, entry: AuditEntry, *, at: datetime | None = None) -> int:
        """Insert one row, chained to the last; returns its id. Blocking."""
        with self.transaction() as conn:
            return self.append_in(conn, entry, at=at)

    def append_in(self, conn: Connection, entry: AuditEntry, *, at: datetime | None = None) -> int:
        """Insert within a ``transaction()`` (the audit row commits with the change)."""
        last = conn.execute(
            select(audit_log.c.id, audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)
        ).first()
        row: dict[str, Any] = {
            "id": 1 if last is None else int(last.id) + 1,
            "at": (at or datetime.now(UTC)).astimezone(UTC),
            "actor": entry.actor[:100],
            "role": entry.role[:32],
            "source_ip": entry.source_ip[:64],
            "action": entry.action[:200],
            "target": entry.target[:300],
            "status": entry.status,
            "before": _jsonable(entry.before),
            "after": _jsonable(entry.after),
            "prev_hash": GENESIS if last is None else str(last.hash),
        }
        row["hash"] = _digest(self.key, row)
        conn.execute(insert(audit_log), [row])
        return int(row["id"])

    def head(self) -> tuple[int, str]:
        """(id, hash) of the newest row; (0, genesis) when empty."""
        with self.engine.connect() as conn:
            last = conn.execute(
                select(audit_log.c.id, audit_log.c.hash).order_by(audit_log.c.id.desc()).limit(1)
            ).first()
        return (0, GENESIS) if last is None else (int(last.id), str(last.hash))

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(audit_log)).scalar_one())

    def verify(self, *, batch: int = 1000) -> VerifyResult:
        """Walk the chain in id order; stop at the first row that does not verify."""
        expected_id, prev = 1, GENESIS
        checked = 0
        with self.engine.connect() as conn:
            after = 0
            while True:
                rows = conn.execute(
                    select(audit_log)
                    .where(audit_log.c.id > after)
                    .order_by(audit_log.c.id)
                    .limit(batch)
                ).all()
                if not rows:
                    return VerifyResult(True, checked)
                for r in rows:
                    m = dict(r._mapping)
                    rid = int(m["id"])
                    if rid != expected_id:
                        return VerifyResult(
                            False, checked, expected_id, f"row {expected_id} is missing"
                        )
                    if m["prev_hash"] != prev:
                        return VerifyResult(
                            False,
                            checked,
                            rid,
                            f"row {rid} does not follow row {rid - 1} (moved, replaced or "
                            "the previous row was altered)",
                        )
                    if not hmac.compare_digest(_digest(self.key, m), str(m["hash"])):
                        return VerifyResult(False, checked, rid, f"row {rid} was altered")
                    prev = str(m["hash"])
                    expected_id += 1
                    checked += 1
                    after = rid


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int
    bad_row: int | None = None
    reason: str = ""
