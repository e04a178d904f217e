"""The hash-chained, append-only audit log.

Each row carries ``prev_hash`` (the previous row's ``hash``; 64 zeros for row 1) and
``hash = HMAC-SHA256(key, canonical JSON of the row including id and prev_hash)``. The key
comes from ``LIANFANG_AUDIT_KEY`` or a 0600 file, never from the database, so whoever can
write the database still cannot forge a row that verifies. Row ids are 1, 2, 3, … without
gaps, so a deleted row shows as a gap and a moved row as a broken link.

``verify`` reports the first row that fails. Rows removed from the *end* leave a chain
that verifies; a signed checkpoint of the head, written outside the database after every
append (``gateway.audit.checkpoint``), shows them: ``verify`` compares with it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
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

from gateway.audit.checkpoint import Checkpoint, CheckpointError, Checkpoints
from gateway.audit.config import AuditConfig
from gateway.audit.tables import audit_log

GENESIS = "0" * 64
KEY_ENV = "LIANFANG_AUDIT_KEY"
KEY_FILE_ENV = "LIANFANG_AUDIT_KEY_FILE"
CHECKPOINT_NAME = "audit-checkpoint.json"
_lock = threading.RLock()  # one writer at a time in this process (PostgreSQL adds a lock)
_HEAD = "lianfang_audit_head"  # Connection.info: the head appended in this transaction
_warned_beside: set[Path] = set()

log = logging.getLogger(__name__)


class AuditKeyError(RuntimeError):
    pass


def _read_secret(path: Path, what: str) -> bytes:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise AuditKeyError(f"{what} {path} does not exist") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise AuditKeyError(f"{path} must not be readable by group/others (chmod 600)")
    key = path.read_text().strip().encode()
    if not key:
        raise AuditKeyError(f"{path} is empty")
    return key


def load_audit_key(data_dir: Path | None = None, key_file: Path | None = None) -> bytes:
    """The HMAC key, from the first of: ``LIANFANG_AUDIT_KEY``; the file named by
    ``LIANFANG_AUDIT_KEY_FILE``; ``key_file`` (``audit.key_file``); ``<data_dir>/audit.key``
    (created 0600 on first use; a warning says it sits beside the database). Key files
    readable by group or others are refused."""
    env = os.environ.get(KEY_ENV)
    if env:
        return env.encode()
    named = os.environ.get(KEY_FILE_ENV)
    if named:
        return _read_secret(Path(named), KEY_FILE_ENV)
    if key_file is not None:
        return _read_secret(key_file, "audit.key_file")
    if data_dir is None:
        raise AuditKeyError(f"{KEY_ENV} is not set and no data directory to keep a key in")
    path = data_dir / "audit.key"
    if not path.exists():
        import secrets

        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    if path not in _warned_beside:
        _warned_beside.add(path)
        log.warning(
            "the audit key is %s, beside the database: whoever copies the data folder can "
            "forge the audit chain. In production set %s, %s or audit.key_file "
            "(docs/security.md)",
            path, KEY_ENV, KEY_FILE_ENV,
        )  # fmt: skip
    return _read_secret(path, "audit key")


def open_audit_log(
    engine: Engine, data_dir: Path, config: AuditConfig | None = None, *, checkpoints: bool = True
) -> AuditLog:
    """The audit log of a gateway: its key and its checkpoint file from ``config``."""
    config = config or AuditConfig()
    key = load_audit_key(data_dir, config.key_file)
    if not checkpoints:
        return AuditLog(engine, key)
    path = config.checkpoint_file or data_dir / CHECKPOINT_NAME
    return AuditLog(engine, key, checkpoints=Checkpoints(path, key))


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

    def __init__(
        self, engine: Engine, key: bytes, *, checkpoints: Checkpoints | None = None
    ) -> None:
        if not key:
            raise AuditKeyError("empty audit key")
        self.engine = engine
        self.key = key
        self.checkpoints = checkpoints

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A transaction that may append audit rows (``append_in``): holds the chain's lock
        until commit, so two writers never chain to the same row. After the commit the new
        head is checkpointed (when this log has a checkpoint file)."""
        with _lock:
            with self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(7361, 1)"))
                try:
                    yield conn
                finally:
                    head = conn.info.pop(_HEAD, None)
            if head is not None and self.checkpoints is not None:
                try:
                    self.checkpoints.record(head[0], head[1], holds=self._holds)
                except OSError:  # the row is committed; a missing checkpoint is reported
                    log.exception("audit: could not write the checkpoint of row %s", head[0])

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
        conn.info[_HEAD] = (int(row["id"]), str(row["hash"]))
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

    def _holds(self, cp: Checkpoint) -> bool:
        """Whether the chain still has the checkpointed row, unchanged."""
        with self.engine.connect() as conn:
            stored = conn.execute(select(audit_log.c.hash).where(audit_log.c.id == cp.id)).scalar()
        return stored == cp.hash

    def checkpoint_to_log(self) -> bool:
        """Write the head to the log when it moved since the last time (the copy that
        leaves the machine with the logs). A database head behind the checkpoint file is
        logged as an error instead (rows were cut), never copied as the new head."""
        if self.checkpoints is None:
            return False
        row_id, row_hash = self.head()
        try:
            saved = self.checkpoints.read()
        except CheckpointError as exc:
            log.error("audit checkpoint file %s: %s", self.checkpoints.path, exc)
            saved = None
        if saved is not None and (
            saved.id > row_id or (saved.id == row_id and saved.hash != row_hash)
        ):
            log.error(
                "audit log: the database ends at row %d but the checkpoint of %s names row %d "
                "(rows were cut or replaced): run `lianfang audit verify`",
                row_id, saved.at.isoformat(), saved.id,
            )  # fmt: skip
            return False
        return self.checkpoints.log_head(row_id, row_hash)

    def verify(self, *, batch: int = 1000, expect: Checkpoint | None = None) -> VerifyResult:
        """Walk the chain, then compare its end with the checkpoint file (and with
        ``expect``, a checkpoint copied from the log): rows cut after a checkpoint are
        reported as missing."""
        result = self._walk(batch)
        if not result.ok:
            return result
        checked = [expect] if expect is not None else []
        note = "no checkpoint file configured"
        if self.checkpoints is not None:
            try:
                found = self.checkpoints.read()
            except CheckpointError as exc:
                return VerifyResult(False, result.checked, None, str(exc))
            if expect is not None:
                try:
                    self.checkpoints.check(expect)
                except CheckpointError as exc:
                    return VerifyResult(False, result.checked, None, f"--head: {exc}")
            if found is None:
                note = f"no checkpoint yet in {self.checkpoints.path}"
            else:
                checked.append(found)
        for cp in checked:
            problem = self._against(cp, result.checked)
            if problem is not None:
                return problem
        if checked:
            newest = max(checked, key=lambda c: c.id)
            note = f"matches the checkpoint of row {newest.id} ({newest.at.isoformat()})"
        return VerifyResult(True, result.checked, checkpoint=note)

    def _against(self, cp: Checkpoint, rows: int) -> VerifyResult | None:
        """Whether the verified chain (``rows`` rows, ids 1…rows) holds the checkpoint."""
        if cp.id > rows:
            return VerifyResult(
                False, rows, rows + 1,
                f"{_rows_named(rows + 1, cp.id)} missing: the checkpoint of "
                f"{cp.at.isoformat()} names row {cp.id} (rows were cut from the end)",
            )  # fmt: skip
        if cp.id > 0:
            with self.engine.connect() as conn:
                stored = conn.execute(
                    select(audit_log.c.hash).where(audit_log.c.id == cp.id)
                ).scalar()
            if stored != cp.hash:
                return VerifyResult(
                    False, rows, cp.id,
                    f"row {cp.id} is not the row checkpointed at {cp.at.isoformat()} "
                    "(the end was cut and rows appended again)",
                )  # fmt: skip
        return None

    def _walk(self, batch: int) -> VerifyResult:
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


def _rows_named(first: int, last: int) -> str:
    return f"row {first} is" if first == last else f"rows {first}–{last} are"


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    checked: int
    bad_row: int | None = None
    reason: str = ""
    checkpoint: str = ""  # how the end of the chain compared with the checkpoints
