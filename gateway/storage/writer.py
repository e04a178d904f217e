"""The batch writer: one thread that commits events in batches, then acknowledges them.

Acknowledgements (MQTT PUBACKs) are released only after the batch holding their events has
been committed, in arrival order — so a crash re-delivers instead of losing. Duplicate event
ids are ignored by the database's unique key (``ON CONFLICT DO NOTHING``), never stored twice
(PostgreSQL: the ``event_keys`` table, see ``gateway.storage.postgres_writer``).

Rows are encoded and device states folded in the *submitting* thread: the writer thread then
spends its time in the database driver (which releases the GIL) rather than competing with
the receive thread for it.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from itertools import chain
from typing import Any, Protocol

import orjson
from pydantic import BaseModel
from sqlalchemy import Connection, Engine, delete, func, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from gateway.events import ATTRIBUTE_MODELS, Event, EventType
from gateway.ingest.pipeline import QuarantineRecord
from gateway.ingest.quarantine import MinuteCount
from gateway.storage import tables
from gateway.storage.outage import outage_for
from gateway.storage.timetext import utc_text
from gateway.storage.write_lane import lane_for

log = logging.getLogger(__name__)


def _driver_errors() -> tuple[type[Exception], ...]:
    """What a failed write raises: SQLAlchemy's errors, and the drivers' own from the hot
    paths that use the DB-API cursor directly (SQLite multi-row INSERT, PostgreSQL COPY)."""
    errors: list[type[Exception]] = [SQLAlchemyError, sqlite3.Error]
    try:
        import psycopg
    except ImportError:  # pragma: no cover - PostgreSQL support not installed
        pass
    else:
        errors.append(psycopg.Error)
    return tuple(errors)


WRITE_ERRORS = _driver_errors()

RETRY_MAX_S = 5.0
DEVICE_STATE_EVERY_S = 1.0  # how often last-seen state is written (events: every batch)
CHECKPOINT_EVERY_S = 1.0  # SQLite: WAL checkpoints here, never inside an alarm's commit
SQLITE_ROWS_PER_INSERT = 3000  # 10 columns each: under SQLite's 32,766 bound parameters


@dataclass(slots=True)
class WriteItem:
    events: list[Event] = field(default_factory=list)
    quarantined: QuarantineRecord | None = None
    ack: Any = None  # opaque token handed back to ``BatchWriter.acknowledge`` after commit
    barrier: threading.Event | None = None  # set once this item's batch is written (flush)
    submitted: float = field(default_factory=time.monotonic)
    rows: list[Any] = field(default_factory=list)  # encoded by submit()
    # Cluster mode: site → fencing token its events were received under (stamped by submit()
    # unless the submitter set it); checked in the write transaction (BatchWriter.fence).
    leases: dict[str, int] | None = None
    refused: bool = False  # its lease was lost: neither stored nor acknowledged


class BatchFence(Protocol):
    """Cluster mode's fencing token check (gateway.cluster.fence.LeaseFence)."""

    def stamp(self, sites: Sequence[str]) -> dict[str, int] | None: ...

    def refused(
        self, conn: Connection, stamps: Sequence[Mapping[str, int] | None]
    ) -> list[bool]: ...


@dataclass
class WriterStats:
    batches: int = 0
    stored: int = 0
    duplicates: int = 0  # rejected by the unique key (redeliveries across restarts)
    quarantined: int = 0
    quarantine_evicted: int = 0  # oldest rows removed to keep the table under its byte cap
    errors: int = 0
    refused: int = 0  # events not stored: their site's lease was lost (cluster mode)
    last_commit_at: float | None = None
    last_batch_ms: float = 0.0


def event_row(e: Event) -> dict[str, Any]:
    """Row for the portable (SQLAlchemy Core) path."""
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


_SQLITE_EVENT_COLUMNS = (
    "INSERT INTO events (event_id, site, device_id, kind, type, occurred_at, received_at,"
    " attributes, source, raw) VALUES "
)
_SQLITE_EVENT_ROW = "(?,?,?,?,?,?,?,?,?,?)"


@lru_cache(maxsize=64)
def _sqlite_insert_events(n: int) -> str:
    """A multi-row INSERT for n events (cached: batch sizes repeat)."""
    return (
        _SQLITE_EVENT_COLUMNS
        + ",".join([_SQLITE_EVENT_ROW] * n)
        + " ON CONFLICT (event_id) DO NOTHING"
    )


def _flat(rows: list[tuple[Any, ...]]) -> list[Any]:
    return list(chain.from_iterable(rows))


def _sqlite_time(value: datetime) -> str:
    """SQLAlchemy's SQLite DATETIME storage format (gateway/storage/timetext.py)."""
    return utc_text(value)


# Each attribute model's fields with their defaults, in declaration order.
_ATTRIBUTE_DEFAULTS = {
    model: {
        name: info.get_default(call_default_factory=True)
        for name, info in model.model_fields.items()
    }
    for model in ATTRIBUTE_MODELS.values()
}


def attributes_json(attributes: BaseModel) -> str:
    """``attributes.model_dump_json(exclude_defaults=True)``, for the models of
    ``gateway.events``, at a third of the cost: the validated values, defaults left out, in
    field order, encoded by orjson (enums by value). Tested equal to pydantic's output."""
    defaults = _ATTRIBUTE_DEFAULTS[type(attributes)]  # type: ignore[index]
    values = {k: v for k, v in attributes.__dict__.items() if v != defaults[k]}
    return orjson.dumps(values).decode()


def sqlite_event_row(e: Event) -> tuple[Any, ...]:
    """Row for the SQLite hot path: DB-API tuple in the formats SQLAlchemy reads back."""
    return (
        e.event_id,
        e.site,
        e.device_id,
        e.kind.value,
        e.type.value,
        _sqlite_time(e.occurred_at),
        _sqlite_time(e.received_at),
        attributes_json(e.attributes),
        e.source,
        e.raw,
    )


QUARANTINE_ROW_OVERHEAD = 64  # bytes counted per row beyond its columns (id, times, index)


def _quarantine_size(q: QuarantineRecord) -> int:
    """What one row counts against ``quarantine_max_bytes`` (as ``_QUARANTINE_SIZE`` reads)."""
    return (
        len(q.raw) + len(q.detail) + len(q.topic) + len(q.device_id or "") + QUARANTINE_ROW_OVERHEAD
    )


def _quarantine_size_sql() -> Any:
    c = tables.quarantine.c
    return (
        func.length(c.raw)
        + func.length(c.detail)
        + func.length(c.topic)
        + func.coalesce(func.length(c.device_id), 0)
        + QUARANTINE_ROW_OVERHEAD
    )


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


class BatchWriter:
    """Owns the write connection. ``submit`` from any thread; ``start``/``stop`` once."""

    def __init__(
        self,
        engine: Engine,
        *,
        batch_size: int = 2000,
        interval_s: float = 0.2,
        on_committed: Callable[[list[Event]], None] | None = None,
        quarantine_counts: Callable[[], list[MinuteCount]] | None = None,
        quarantine_max_bytes: int | None = None,
    ) -> None:
        self.engine = engine
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.on_committed = on_committed
        # The quarantine's exact counts (QuarantineSampler.drain), stored with each batch, and
        # its size cap: past it the oldest rows are evicted.
        self.quarantine_counts = quarantine_counts
        self.quarantine_max_bytes = quarantine_max_bytes
        self._quarantine_bytes: int | None = None  # read from the table when first needed
        # Receives the ``ack`` tokens of each committed batch at once, in arrival order; set by
        # the MQTT consumer, which turns them into PUBACKs sent in one write.
        self.acknowledge: Callable[[list[Any]], None] | None = None
        # Cluster mode: items stamped with their sites' fencing tokens are written only while
        # this worker still holds those leases, checked in the same transaction (docs/cluster.md).
        self.fence: BatchFence | None = None
        self.stats = WriterStats()
        dialect = engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            raise RuntimeError(f"unsupported database dialect {dialect}")
        self._sqlite = dialect == "sqlite"
        self._insert = sqlite.insert if self._sqlite else postgresql.insert
        self._encode: Callable[[Event], Any] = sqlite_event_row
        if not self._sqlite:  # COPY and event_keys (gateway/storage/postgres_writer.py)
            from gateway.storage.postgres_writer import PostgresEventPath

            self._postgres = PostgresEventPath()
            self._encode = self._postgres.encode
        # A deque plus a wake-up event: appends are cheap under the GIL and the writer takes
        # everything waiting in one go, instead of one locked get() per message.
        self._queue: deque[WriteItem | None] = deque()
        self._wake = threading.Event()
        # Newest state per device since the last batch: (site, kind, online, seen, type, battery).
        self._devices: dict[str, tuple[str, str, bool, datetime, str, int | None]] = {}
        self._devices_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._devices_written_at = 0.0
        self._checkpointed_at = time.monotonic()
        # Incident writes go before the next batch (gateway/storage/write_lane.py).
        self.lane = lane_for(engine)
        # Database down since …, shared with the incident service; and the wall time the
        # write under way began (a locked SQLite makes a write wait, not fail, for a while).
        self.outage = outage_for(engine)
        self.write_started: float | None = None
        self._in_hand = 0  # items of the batch being written

    # -- producer side -------------------------------------------------------------
    def submit(self, item: WriteItem | None) -> None:
        self.submit_many([item])

    def submit_many(self, items: list[WriteItem | None]) -> None:
        """Queue items in order; one wake-up of the writer thread for all of them."""
        encode = self._encode
        fence = self.fence
        with self._devices_lock:
            devices = self._devices
            for item in items:
                if item is None or not item.events:
                    continue
                item.rows = [encode(e) for e in item.events]
                if fence is not None and item.leases is None:
                    item.leases = fence.stamp(sorted({e.site for e in item.events}))
                for e in item.events:
                    battery = e.attributes.battery_pct
                    if battery is None and e.device_id in devices:
                        battery = devices[e.device_id][5]
                    devices[e.device_id] = (
                        e.site,
                        e.kind.value,
                        e.type is not EventType.OFFLINE,
                        e.received_at,
                        e.type.value,
                        battery,
                    )
        self._queue.extend(items)
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
        """Items waiting: queued, and the batch being written (or retried)."""
        return len(self._queue) + self._in_hand

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
        while True:
            first = self._take(None)
            if first is None or first is False:
                if self._devices:
                    self._write_until_done([], final=True)
                break
            assert isinstance(first, WriteItem)
            # Let a batch build up without waking per message: poll the queue length a few
            # times until it is full or the interval has passed, then take it whole.
            deadline = first.submitted + self.interval_s
            while len(self._queue) < self.batch_size and (left := deadline - time.monotonic()) > 0:
                time.sleep(min(left, self.interval_s / 5))
            batch = [first]
            count = len(first.events)
            stopping = False
            while count < self.batch_size:
                item = self._take(0)
                if item is False:
                    break
                if item is None:
                    stopping = True
                    break
                assert isinstance(item, WriteItem)
                batch.append(item)
                count += len(item.events)
            self._write_until_done(batch, final=stopping)
            if stopping:
                break

    def _write_until_done(self, batch: list[WriteItem], *, final: bool = False) -> None:
        # Last-seen state changes with every event but is read by people: write it once a
        # second (and on flush and stop), not with every batch.
        now = time.monotonic()
        devices: dict[str, tuple[Any, ...]] = {}
        if (
            final
            or now - self._devices_written_at >= DEVICE_STATE_EVERY_S
            or any(item.barrier is not None for item in batch)
        ):
            with self._devices_lock:
                devices, self._devices = self._devices, {}
            self._devices_written_at = now
        counts = self.quarantine_counts() if self.quarantine_counts is not None else []
        self._in_hand = len(batch)
        lost_sites: set[str] = set()

        def write() -> None:
            lost_sites.clear()
            lost_sites.update(self._write(batch, counts))

        self._retry(write)
        self._in_hand = 0
        acks = [item.ack for item in batch if item.ack is not None and not item.refused]
        if lost_sites:  # their devices' state is the new owner's to write
            devices = {d: state for d, state in devices.items() if state[0] not in lost_sites}
        if acks and self.acknowledge is not None:
            try:
                self.acknowledge(acks)
            except Exception:
                log.exception("acknowledgement failed")
        # Device state in a transaction of its own, after the events are acknowledged: the
        # lane is free in between, so an incident waiting for it does not wait for this too.
        if devices:
            self._retry(lambda: self._write_devices(devices))
        self._cap_quarantine(batch)
        for item in batch:
            if item.barrier is not None:
                item.barrier.set()
        if self._sqlite and now - self._checkpointed_at >= CHECKPOINT_EVERY_S:
            self._checkpointed_at = now
            self._checkpoint()

    def _retry(self, write: Callable[[], None]) -> None:
        """Run ``write`` until it succeeds, backing off up to ``RETRY_MAX_S``; the batch is
        kept meanwhile, and the outage is recorded for health (docs/database-outage.md)."""
        delay = 0.1
        while True:
            self.write_started = time.time()
            try:
                write()
                self.write_started = None
                self.outage.recovered()
                return
            except WRITE_ERRORS as exc:
                # Nothing is acknowledged, so nothing is lost: the broker keeps the messages.
                self.write_started = None
                self.outage.failed(exc)
                self.stats.errors += 1
                log.error(
                    "database write failed (%s); retrying in %.1fs", exc.__class__.__name__, delay
                )
                time.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    def _checkpoint(self) -> None:
        """Copy the WAL into the database without waiting for readers or writers (PASSIVE)."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except SQLAlchemyError as exc:  # a checkpoint can always wait for the next one
            log.warning("WAL checkpoint failed: %s", exc.__class__.__name__)

    def _write(self, batch: list[WriteItem], counts: list[MinuteCount] | None = None) -> set[str]:
        """One transaction: the batch's events, quarantine rows and counts (routine lane);
        returns the sites whose lease was lost (cluster mode: their items were refused)."""
        started = time.perf_counter()
        quarantined = [item.quarantined for item in batch if item.quarantined is not None]
        stored = 0
        lost_sites: set[str] = set()
        with self.lane.routine(), self.engine.begin() as conn:
            if self.fence is not None:
                lost_sites = self._fence(conn, batch)
            rows = [row for item in batch if not item.refused for row in item.rows]
            if rows:
                stored = self._insert_events(conn, rows)
            if quarantined:
                conn.execute(insert(tables.quarantine), [_quarantine_row(q) for q in quarantined])
            if counts:
                self._add_counts(conn, counts)
        self.stats.batches += 1
        self.stats.stored += stored
        self.stats.duplicates += len(rows) - stored
        self.stats.quarantined += len(quarantined)
        self.stats.refused += sum(len(item.events) for item in batch if item.refused)
        self.stats.last_commit_at = time.time()
        self.stats.last_batch_ms = (time.perf_counter() - started) * 1000
        if self.on_committed is not None and rows:
            self.on_committed([e for item in batch if not item.refused for e in item.events])
        return lost_sites

    def _fence(self, conn: Connection, batch: list[WriteItem]) -> set[str]:
        """Mark the items whose site lease was lost (not written, not acknowledged: the broker
        keeps their messages for the site's new owner); returns those sites (their devices'
        state is not written either)."""
        assert self.fence is not None
        fenced = [item for item in batch if item.leases]
        for item in batch:
            item.refused = False  # a retried batch is checked again
        lost_sites: set[str] = set()
        for item, refused in zip(
            fenced, self.fence.refused(conn, [i.leases for i in fenced]), strict=True
        ):
            if refused:
                item.refused = True
                lost_sites.update(e.site for e in item.events)
        return lost_sites

    def _write_devices(self, devices: dict[str, tuple[Any, ...]]) -> None:
        with self.lane.routine(), self.engine.begin() as conn:
            self._upsert_devices(conn, devices)

    def _insert_events(self, conn: Connection, rows: list[Any]) -> int:
        """Insert, skipping ids already stored; returns how many rows were new."""
        if self._sqlite:
            # The DB-API cursor with plain tuples, inside SQLAlchemy's transaction, several
            # rows per statement: executemany releases and retakes the GIL around every row,
            # which the busy receive thread turns into a convoy; one statement per few thousand
            # rows releases it once.
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            stored = 0
            try:
                for start in range(0, len(rows), SQLITE_ROWS_PER_INSERT):
                    chunk = rows[start : start + SQLITE_ROWS_PER_INSERT]
                    cursor.execute(_sqlite_insert_events(len(chunk)), _flat(chunk))
                    stored += max(int(cursor.rowcount), 0)
                return stored
            finally:
                cursor.close()
        return self._postgres.insert(conn, rows)

    # -- the bounded quarantine ------------------------------------------------------------
    def _add_counts(self, conn: Connection, counts: list[MinuteCount]) -> None:
        """Add to the per-minute counts of quarantined messages (every one, kept or not)."""
        table = tables.quarantine_counts
        ins = self._insert(table)
        stmt = ins.on_conflict_do_update(
            index_elements=["minute", "reason"],
            set_={
                "received": table.c.received + ins.excluded.received,
                "kept": table.c.kept + ins.excluded.kept,
            },
        )
        conn.execute(
            stmt,
            [
                {"minute": c.minute, "reason": c.reason, "received": c.received, "kept": c.kept}
                for c in counts
            ],
        )

    def _cap_quarantine(self, batch: list[WriteItem]) -> None:
        """Past ``quarantine_max_bytes``, delete the oldest rows down to 90% of it."""
        cap = self.quarantine_max_bytes
        if cap is None:
            return
        added = sum(_quarantine_size(i.quarantined) for i in batch if i.quarantined is not None)
        if not added:
            return
        try:
            if self._quarantine_bytes is None:
                self._quarantine_bytes = self._quarantine_total()
            else:
                self._quarantine_bytes += added
            if self._quarantine_bytes <= cap:
                return
            # Retention may have removed rows since: count again before deleting anything.
            self._quarantine_bytes = self._quarantine_total()
            if self._quarantine_bytes > cap:
                self._evict_quarantine(self._quarantine_bytes - int(cap * 0.9))
        except SQLAlchemyError as exc:  # the next batch tries again
            self._quarantine_bytes = None
            log.warning("quarantine size cap: %s", exc.__class__.__name__)

    def _quarantine_total(self) -> int:
        with self.engine.connect() as conn:
            total = conn.execute(select(func.coalesce(func.sum(_quarantine_size_sql()), 0)))
            return int(total.scalar_one())

    def _evict_quarantine(self, excess: int) -> None:
        q = tables.quarantine
        freed = 0
        while freed < excess:
            with self.lane.routine(), self.engine.begin() as conn:
                rows = conn.execute(
                    select(q.c.id, _quarantine_size_sql()).order_by(q.c.id).limit(1000)
                ).all()
                if not rows:
                    break
                last = rows[-1][0]
                for row_id, size in rows:
                    freed += int(size)
                    if freed >= excess:
                        last = row_id
                        break
                deleted = conn.execute(delete(q).where(q.c.id <= last)).rowcount
            self.stats.quarantine_evicted += int(deleted or 0)
        assert self._quarantine_bytes is not None
        self._quarantine_bytes -= freed
        log.warning(
            "quarantine over its %d byte cap: evicted the oldest rows (%d so far)",
            self.quarantine_max_bytes, self.stats.quarantine_evicted,
        )  # fmt: skip

    def _upsert_devices(self, conn: Connection, devices: dict[str, tuple[Any, ...]]) -> None:
        ins = self._insert(tables.devices)
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
            stmt,
            [
                {
                    "id": device_id,
                    "site": site,
                    "kind": kind,
                    "online": online,
                    "last_seen_at": seen,
                    "last_event_type": type_,
                    "battery_pct": battery,
                    "registered": False,  # only for devices not in the registry (inserted here)
                    "name": "",
                }
                # In id order, as seed_registry writes them: workers sharing a PostgreSQL
                # database lock device rows in one order, so they never deadlock on them.
                for device_id, (site, kind, online, seen, type_, battery) in sorted(devices.items())
            ],
        )
