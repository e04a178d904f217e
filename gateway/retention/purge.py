"""Purge routine access and gate records (and every other routine event), quarantined
messages and expired sessions older than the retention period (default 30 days).

SQLite deletes old rows; PostgreSQL drops whole time partitions once they are older than
the period (``gateway.retention.partitions``), so an event is kept at least the period and
at most one partition's length longer.

Kept: events an incident refers to (incident evidence stays with the incident), incidents,
their timelines and attachments, and the audit log (never deleted by the application).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, select

from gateway.auth.tables import auth_sessions
from gateway.incidents.tables import incidents
from gateway.retention.partitions import purge_partitions
from gateway.storage.partitions import is_partitioned
from gateway.storage.tables import events, quarantine, quarantine_counts

log = logging.getLogger(__name__)
BATCH = 5000


@dataclass(frozen=True, slots=True)
class PurgeResult:
    cutoff: datetime
    events: int = 0
    quarantine: int = 0
    sessions: int = 0
    kept_for_incidents: int = 0


def _incident_event_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {
            str(e)
            for ids in conn.execute(select(incidents.c.event_ids)).scalars()
            for e in ids or ()
        }


def purge(engine: Engine, *, days: int, now: datetime | None = None) -> PurgeResult:
    """Delete what is older than ``days``; blocking, in batches (short write locks)."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(days=days)
    keep = _incident_event_ids(engine)
    with engine.connect() as conn:
        partitioned = is_partitioned(conn)
    if partitioned:
        dropped = purge_partitions(engine, cutoff=cutoff, now=now, keep=keep)
        removed, kept = dropped.events, dropped.kept
    else:
        removed, kept = _purge_rows(engine, cutoff, keep)
    with engine.begin() as conn:
        q = conn.execute(delete(quarantine).where(quarantine.c.received_at < cutoff)).rowcount
        conn.execute(delete(quarantine_counts).where(quarantine_counts.c.minute < cutoff))
        s = conn.execute(delete(auth_sessions).where(auth_sessions.c.expires_at < now)).rowcount
    result = PurgeResult(cutoff, removed, int(q or 0), int(s or 0), kept)
    log.info(
        "retention: purged %d events, %d quarantined, %d sessions older than %s (%d kept for incidents)",
        result.events, result.quarantine, result.sessions, cutoff.isoformat(), kept,
    )  # fmt: skip
    return result


def _purge_rows(engine: Engine, cutoff: datetime, keep: set[str]) -> tuple[int, int]:
    """SQLite: delete old rows in batches (short write locks)."""
    removed = kept = 0
    last_seq = 0
    while True:
        with engine.begin() as conn:
            rows = conn.execute(
                select(events.c.seq, events.c.event_id)
                .where(events.c.occurred_at < cutoff, events.c.seq > last_seq)
                .order_by(events.c.seq)
                .limit(BATCH)
            ).all()
            if not rows:
                break
            last_seq = int(rows[-1].seq)
            doomed = [int(r.seq) for r in rows if r.event_id not in keep]
            kept += len(rows) - len(doomed)
            if doomed:
                conn.execute(delete(events).where(events.c.seq.in_(doomed)))
            removed += len(doomed)
    return removed, kept


class RetentionJob:
    """Runs ``purge`` now and then every ``interval_s`` inside the gateway's event loop."""

    def __init__(
        self,
        engine: Engine,
        *,
        days: int = 30,
        interval_s: float = 3600.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.days = days
        self.interval_s = interval_s
        self.clock = clock
        self.last: PurgeResult | None = None
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> PurgeResult:
        self.last = await asyncio.to_thread(purge, self.engine, days=self.days, now=self.clock())
        return self.last

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("retention: purge failed; will retry")
            await asyncio.sleep(self.interval_s)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
