"""Read queries (SQLAlchemy Core). Plain blocking functions: routes run them in a worker
thread through ``Database.run`` so the event loop never waits on the database."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, Row, Select, func, select, text

from gateway.api.filters import DeviceFilter, EventFilter, PageRequest, QuarantineFilter
from gateway.api.schemas import (
    DevicePublic,
    EventDetail,
    EventPublic,
    Page,
    QuarantinePublic,
    QuarantineStats,
)
from gateway.health import DatabaseHealth
from gateway.ingest.reasons import Reason
from gateway.storage.cursor import encode_cursor
from gateway.storage.tables import devices, events, quarantine, quarantine_counts
from gateway.storage.times import utc

EVENTS_LISTING = "events"
DEVICES_LISTING = "devices"
QUARANTINE_LISTING = "quarantine"

RAW_TEXT_CHARS = 4096  # characters of quarantined raw shown as text in listings
RAW_PREVIEW_BYTES = 4096  # bytes of quarantined raw shown in listings (detail shows all)
OVERDUE_FACTOR = 2  # a device is overdue after this many missed heartbeat periods

# C0/C1 controls (not tab, CR, LF), line separators and bidirectional overrides
_CONTROL = re.compile(
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]"
)


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def _page(
    rows: list[Row[Any]],
    limit: int,
    listing: str,
    key: Callable[[Row[Any]], int | str],
) -> tuple[list[Row[Any]], str | None]:
    """Rows were fetched with ``limit + 1``: the extra one says there is a next page."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor(listing, key(rows[-1]))


# -- health -----------------------------------------------------------------------


def check_database(engine: Engine) -> DatabaseHealth:
    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1")).scalar_one()
    except Exception as exc:
        orig = getattr(exc, "orig", None)  # the driver's message, without the SQL echo
        message = f"{type(exc).__name__}: {orig if orig is not None else exc}"
        return DatabaseHealth(ok=False, error=message[:300])
    return DatabaseHealth(ok=True, latency_ms=round((time.perf_counter() - started) * 1000, 3))


# -- events -----------------------------------------------------------------------


def _event_conditions(f: EventFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if f.sites:
        where.append(events.c.site.in_(f.sites))
    if f.device_ids:
        where.append(events.c.device_id.in_(f.device_ids))
    if f.kinds:
        where.append(events.c.kind.in_([k.value for k in f.kinds]))
    if f.types:
        where.append(events.c.type.in_([t.value for t in f.types]))
    # SQLite keeps datetimes as text without an offset, so bind parameters must be UTC too.
    if f.since is not None:
        where.append(events.c.occurred_at >= utc(f.since))
    if f.until is not None:
        where.append(events.c.occurred_at < utc(f.until))
    return where


_EVENT_COLUMNS = [c for c in events.c if c.name != "raw"]


def _event_public(row: Row[Any]) -> EventPublic:
    m = row._mapping
    return EventPublic(
        seq=m["seq"],
        event_id=m["event_id"],
        site=m["site"],
        device_id=m["device_id"],
        kind=m["kind"],
        type=m["type"],
        occurred_at=utc(m["occurred_at"]),
        received_at=utc(m["received_at"]),
        attributes=m["attributes"] or {},
        source=m["source"],
    )


def list_events(engine: Engine, f: EventFilter, page: PageRequest) -> Page[EventPublic]:
    """Newest first by storage order (``seq``)."""
    stmt = select(*_EVENT_COLUMNS).where(*_event_conditions(f))
    if page.after is not None:
        stmt = stmt.where(events.c.seq < page.after)
    stmt = stmt.order_by(events.c.seq.desc()).limit(page.limit + 1)
    with engine.connect() as conn:
        rows = list(conn.execute(stmt))
    rows, cursor = _page(rows, page.limit, EVENTS_LISTING, lambda r: int(r.seq))
    return Page[EventPublic](items=[_event_public(r) for r in rows], next_cursor=cursor)


def get_event(engine: Engine, event_id: str) -> EventDetail | None:
    with engine.connect() as conn:
        row = conn.execute(select(events).where(events.c.event_id == event_id)).first()
    if row is None:
        return None
    return EventDetail(**_event_public(row).model_dump(), raw=row.raw)


# -- devices ----------------------------------------------------------------------


def _device_public(row: Row[Any], now: datetime) -> DevicePublic:
    m = row._mapping
    last_seen = _utc_or_none(m["last_seen_at"])
    heartbeat = m["heartbeat_s"]
    overdue: bool | None = None
    if heartbeat:
        overdue = last_seen is None or now - last_seen > timedelta(
            seconds=heartbeat * OVERDUE_FACTOR
        )
    return DevicePublic(
        id=m["id"],
        site=m["site"],
        kind=m["kind"],
        name=m["name"] or "",
        place=m["place"],
        zone=m["zone"],
        household=m["household"],
        camera=m["camera"],
        registered=bool(m["registered"]),
        profile=m["profile"],
        source=m["source"],
        online=m["online"],
        last_seen_at=last_seen,
        last_event_type=m["last_event_type"],
        battery_pct=m["battery_pct"],
        heartbeat_s=heartbeat,
        overdue=overdue,
    )


def list_devices(
    engine: Engine, f: DeviceFilter, page: PageRequest, now: datetime | None = None
) -> Page[DevicePublic]:
    """Ordered by device id."""
    now = now or datetime.now(UTC)
    stmt: Select[Any] = select(devices)
    if f.sites:
        stmt = stmt.where(devices.c.site.in_(f.sites))
    if f.kinds:
        stmt = stmt.where(devices.c.kind.in_([k.value for k in f.kinds]))
    if f.online is not None:
        stmt = stmt.where(devices.c.online.is_(f.online))
    if page.after is not None:
        stmt = stmt.where(devices.c.id > str(page.after))
    stmt = stmt.order_by(devices.c.id).limit(page.limit + 1)
    with engine.connect() as conn:
        rows = list(conn.execute(stmt))
    rows, cursor = _page(rows, page.limit, DEVICES_LISTING, lambda r: str(r.id))
    return Page[DevicePublic](items=[_device_public(r, now) for r in rows], next_cursor=cursor)


def get_device(engine: Engine, device_id: str, now: datetime | None = None) -> DevicePublic | None:
    with engine.connect() as conn:
        row = conn.execute(select(devices).where(devices.c.id == device_id)).first()
    return None if row is None else _device_public(row, now or datetime.now(UTC))


# -- quarantine -------------------------------------------------------------------


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_raw(raw: bytes, max_chars: int | None = None) -> tuple[str, bool]:
    """Bytes as readable text: UTF-8, anything else (and control characters other than tab and
    newlines, bidi overrides) as ``\\xNN`` / ``\\uNNNN``, so terminals and pages never interpret what a device sent.
    Returns the text and whether it was cut at ``max_chars``."""
    decoded = raw.decode("utf-8", errors="backslashreplace")
    escaped = _CONTROL.sub(_escape_char, decoded)
    if max_chars is not None and len(escaped) > max_chars:
        return escaped[:max_chars], True
    return escaped, False


def _quarantine_public(row: Row[Any], *, preview: bool) -> QuarantinePublic:
    m = row._mapping
    stored = bytes(m["raw"])
    shown = stored[:RAW_PREVIEW_BYTES] if preview else stored
    raw_text, cut = escape_raw(shown, RAW_TEXT_CHARS if preview else None)
    return QuarantinePublic(
        id=m["id"],
        received_at=utc(m["received_at"]),
        topic=m["topic"],
        reason=m["reason"],
        detail=m["detail"],
        device_id=m["device_id"],
        size=m["size"],
        raw_text=raw_text,
        raw_base64=base64.b64encode(shown).decode("ascii"),
        raw_truncated=cut or len(shown) < m["size"],
    )


def list_quarantine(
    engine: Engine, f: QuarantineFilter, page: PageRequest
) -> Page[QuarantinePublic]:
    """Newest first by id."""
    stmt: Select[Any] = select(quarantine)
    if f.reasons:
        stmt = stmt.where(quarantine.c.reason.in_([r.value for r in f.reasons]))
    if f.device_ids:
        stmt = stmt.where(quarantine.c.device_id.in_(f.device_ids))
    if f.since is not None:
        stmt = stmt.where(quarantine.c.received_at >= utc(f.since))
    if f.until is not None:
        stmt = stmt.where(quarantine.c.received_at < utc(f.until))
    if page.after is not None:
        stmt = stmt.where(quarantine.c.id < page.after)
    stmt = stmt.order_by(quarantine.c.id.desc()).limit(page.limit + 1)
    with engine.connect() as conn:
        rows = list(conn.execute(stmt))
    rows, cursor = _page(rows, page.limit, QUARANTINE_LISTING, lambda r: int(r.id))
    items = [_quarantine_public(r, preview=True) for r in rows]
    return Page[QuarantinePublic](items=items, next_cursor=cursor)


def get_quarantined(engine: Engine, record_id: int) -> QuarantinePublic | None:
    with engine.connect() as conn:
        row = conn.execute(select(quarantine).where(quarantine.c.id == record_id)).first()
    return None if row is None else _quarantine_public(row, preview=False)


def quarantine_stats(engine: Engine, since: datetime | None = None) -> QuarantineStats:
    stmt = select(quarantine.c.reason, func.count()).group_by(quarantine.c.reason)
    counted = select(quarantine_counts.c.reason, func.sum(quarantine_counts.c.received)).group_by(
        quarantine_counts.c.reason
    )
    if since is not None:
        stmt = stmt.where(quarantine.c.received_at >= utc(since))
        # The minute holding ``since`` counts whole: the counts are per minute.
        minute = utc(since).replace(second=0, microsecond=0)
        counted = counted.where(quarantine_counts.c.minute >= minute)
    with engine.connect() as conn:
        counts = {str(reason): int(n) for reason, n in conn.execute(stmt)}
        received = {str(reason): int(n or 0) for reason, n in conn.execute(counted)}
    known = {r.value: 0 for r in Reason}
    return QuarantineStats(
        total=sum(counts.values()),
        by_reason=known | counts,
        received_total=sum(received.values()),
        received_by_reason=known | received,
    )
