"""The batch writer: one thread that commits events in batches, then acknowledges them.

Acknowledgements (MQTT PUBACKs) are released only after the batch holding their events has
been committed, in arrival order — so a crash re-delivers instead of losing. Duplicate event
ids are ignored by the database's unique key (``ON CONFLICT DO NOTHING``), never stored twice.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, Insert, Table, func, insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from gateway.events import Event, EventType
from gateway.ingest.pipeline import QuarantineRecord
from gateway.storage import tables

log = logging.getLogger(__name__)

Ack = Callable[[], None]
RETRY_MAX_S = 5.0


@dataclass(slots=True)
class WriteItem:
    events: list[Event] = field(default_factory=list)
    quarantined: QuarantineRecord | None = None
    ack: Ack | None = None
    barrier: threading.Event | None = None  # set once this item's batch is written (flush)
    submitted: float = field(default_factory=time.monotonic)


@dataclass
class WriterStats:
    batches: int = 0
    stored: int = 0
    duplicates: int = 0  # rejected by the unique key (redeliveries across restarts)
    quarantined: int = 0
    errors: int = 0
    last_commit_at: float | None = None
    last_batch_ms: float = 0.0


def _upsert(engine: Engine, table: Table) -> Callable[[], Any]:
    dialect = engine.dialect.name
    if dialect == "sqlite":
        return lambda: sqlite.insert(table)
    if dialect == "postgresql":
        return lambda: postgresql.insert(table)
    raise RuntimeError(f"unsupported database dialect {dialect}")


def event_row(e: Event) -> dict[str, Any]:
    return {
        "event_id": e.event_id,
        "site": e.site,
        "device_id": e.device_id,
        "kind": e.kind.value,
        "type": e.type.value,
        "occurred_at": e.occurred_at,
        "received_at": e.received_at,
        "attributes": e.attributes.model_dump(mode="json", exclude_defaults=True),
        "source": e.source,
        "raw": e.raw,
    }


def _device_updates(events: Iterable[Event]) -> dict[str, dict[str, Any]]:
    """Newest state per device in the batch."""
    latest: dict[str, dict[str, Any]] = {}
    for e in events:
        row = latest.get(e.device_id)
        if row is not None and row["last_seen_at"] > e.received_at:
            continue
        online = e.type is not EventType.OFFLINE
        new = {
            "id": e.device_id,
            "site": e.site,
            "kind": e.kind.value,
            "online": online,
            "last_seen_at": e.received_at,
            "last_event_type": e.type.value,
            "battery_pct": e.attributes.battery_pct
            if e.attributes.battery_pct is not None
            else (row or {}).get("battery_pct"),
        }
        latest[e.device_id] = new
    return latest


class BatchWriter:
    """Owns the write connection. ``submit`` from any thread; ``start``/``stop`` once."""

    def __init__(
        self,
        engine: Engine,
        *,
        batch_size: int = 500,
        interval_s: float = 0.05,
        on_committed: Callable[[list[Event]], None] | None = None,
    ) -> None:
        self.engine = engine
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.on_committed = on_committed
        self.stats = WriterStats()
        # A deque plus a wake-up event: appends are lock-free under the GIL and the writer
        # takes everything waiting in one go, instead of one locked get() per message.
        self._queue: deque[WriteItem | None] = deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._insert_event = _upsert(engine, tables.events)
        self._insert_device = _upsert(engine, tables.devices)

    # -- producer side -------------------------------------------------------------
    def submit(self, item: WriteItem | None) -> None:
        self._queue.append(item)
        if not self._wake.is_set():
            self._wake.set()

    def flush(self, timeout: float = 30.0) -> bool:
        """Block until everything submitted before the call is committed and acknowledged."""
        if self._thread is None:
            return True
        done = threading.Event()
        self.submit(WriteItem(barrier=done))
        return done.wait(timeout)

    def lag_s(self) -> float:
        """Age of the oldest message not yet committed (0 when nothing waits)."""
        try:
            oldest = self._queue[0]
        except IndexError:
            return 0.0
        return 0.0 if oldest is None else max(time.monotonic() - oldest.submitted, 0.0)

    @property
    def backlog(self) -> int:
        return len(self._queue)

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lianfang-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Write everything submitted so far, then stop."""
        if self._thread is None:
            return
        self.submit(None)
        self._thread.join(timeout)
        self._thread = None

    # -- the writer thread ---------------------------------------------------------
    def _take(self, wait_s: float | None) -> WriteItem | bool | None:
        """Next item; ``False`` when none arrived within ``wait_s``."""
        while True:
            try:
                return self._queue.popleft()
            except IndexError:
                pass
            self._wake.clear()
            if self._queue:  # appended between popleft and clear
                continue
            if wait_s is not None and wait_s <= 0:
                return False
            if not self._wake.wait(wait_s) and wait_s is not None:
                return False

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._take(None)
            if first is None or first is False:
                break
            batch = [first]
            count = len(first.events)
            deadline = time.monotonic() + self.interval_s
            while count < self.batch_size:
                item = self._take(deadline - time.monotonic())
                if item is False:
                    break
                if item is None:
                    stopping = True
                    break
                assert isinstance(item, WriteItem)
                batch.append(item)
                count += len(item.events)
            self._write_until_done(batch)

    def _write_until_done(self, batch: list[WriteItem]) -> None:
        delay = 0.1
        while True:
            try:
                self._write(batch)
                break
            except SQLAlchemyError as exc:
                # Nothing is acknowledged, so nothing is lost: the broker keeps the messages.
                self.stats.errors += 1
                log.error(
                    "database write failed (%s); retrying in %.1fs", exc.__class__.__name__, delay
                )
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
        for item in batch:
            if item.ack is not None:
                try:
                    item.ack()
                except Exception:
                    log.exception("acknowledgement failed")
            if item.barrier is not None:
                item.barrier.set()

    def _write(self, batch: list[WriteItem]) -> None:
        started = time.perf_counter()
        events = [e for item in batch for e in item.events]
        quarantined = [item.quarantined for item in batch if item.quarantined is not None]
        stored = 0
        with self.engine.begin() as conn:
            if events:
                stmt: Insert = self._insert_event().on_conflict_do_nothing(
                    index_elements=["event_id"]
                )
                result = conn.execute(stmt, [event_row(e) for e in events])
                stored = max(result.rowcount, 0)
                updates = _device_updates(events)
                if updates:
                    ins = self._insert_device()
                    stmt = ins.on_conflict_do_update(
                        index_elements=["id"],
                        set_={
                            "online": ins.excluded.online,
                            "last_seen_at": ins.excluded.last_seen_at,
                            "last_event_type": ins.excluded.last_event_type,
                            "battery_pct": func.coalesce(
                                ins.excluded.battery_pct, tables.devices.c.battery_pct
                            ),
                        },
                    )
                    conn.execute(
                        stmt, [{**u, "registered": False, "name": ""} for u in updates.values()]
                    )
            if quarantined:
                conn.execute(insert(tables.quarantine), [_quarantine_row(q) for q in quarantined])
        self.stats.batches += 1
        self.stats.stored += stored
        self.stats.duplicates += len(events) - stored
        self.stats.quarantined += len(quarantined)
        self.stats.last_commit_at = time.time()
        self.stats.last_batch_ms = (time.perf_counter() - started) * 1000
        if self.on_committed is not None and events:
            self.on_committed(events)


def _quarantine_row(q: QuarantineRecord) -> dict[str, Any]:
    return {
        "received_at": q.received_at,
        "topic": q.topic,
        "reason": q.reason.value,
        "detail": q.detail,
        "device_id": q.device_id,
        "raw": q.raw,
        "size": q.size,
    }
