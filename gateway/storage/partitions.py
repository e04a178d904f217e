"""The time partitions of ``events`` on PostgreSQL (migration 0009): which exist, creating
them ahead, and dropping whole ones for retention. SQLite has no partitions: every function
here is for a PostgreSQL connection only (``is_partitioned`` tells).

Layout: ``events_old`` holds everything before the first live partition (from MINVALUE);
then one partition a period (``events_pYYYYMMDD``, named after its first instant, UTC),
contiguous, so a row always has a partition as long as partitions exist up to its time.
The period is a month by default (docs/datapool.md: measured against a week); an existing
database keeps the period of its newest partition.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import Connection, text

log = logging.getLogger(__name__)

OLD = "events_old"
AHEAD = 2  # periods created ahead of the current one
KEY_DELETE_BATCH = 50_000  # event ids forgotten per transaction after a partition is dropped


class Period(StrEnum):
    MONTH = "month"
    WEEK = "week"

    def start(self, t: datetime) -> datetime:
        """The first instant (UTC) of the period holding ``t``; weeks start on Monday."""
        t = t.astimezone(UTC)
        if self is Period.MONTH:
            return datetime(t.year, t.month, 1, tzinfo=UTC)
        day = datetime(t.year, t.month, t.day, tzinfo=UTC)
        return day - timedelta(days=day.weekday())

    def next(self, start: datetime) -> datetime:
        if self is Period.MONTH:
            index = start.year * 12 + start.month
            return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)
        return start + timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    start: datetime | None  # None: from MINVALUE (events_old)
    end: datetime


_BOUND = re.compile(r"FROM \((?:'([^']+)'|MINVALUE)\) TO \('([^']+)'\)")


def is_partitioned(conn: Connection) -> bool:
    """Whether ``events`` is the partitioned table of migration 0009."""
    if conn.dialect.name != "postgresql":
        return False
    kind = conn.exec_driver_sql(
        "SELECT relkind FROM pg_class WHERE oid = to_regclass('events')"
    ).scalar()
    return kind == "p"


def partitions(conn: Connection) -> list[Partition]:
    """The partitions of ``events``, oldest first (``events_old`` first)."""
    rows = conn.exec_driver_sql(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)"
        " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'events'::regclass"
    ).all()
    out = []
    for name, bound in rows:
        match = _BOUND.search(bound or "")
        if match is None:  # a DEFAULT partition would be someone else's doing
            log.warning("events partition %s has an unexpected bound %r", name, bound)
            continue
        start = _timestamp(match.group(1)) if match.group(1) else None
        out.append(Partition(str(name), start, _timestamp(match.group(2))))
    return sorted(out, key=lambda p: (p.start is not None, p.start or p.end))


def _timestamp(value: str) -> datetime:
    # pg_get_expr renders bounds in the session's time zone: read the offset it writes.
    parsed = datetime.fromisoformat(
        value if re.search(r"[+-]\d\d(:?\d\d)?$", value) else value + "+00"
    )
    return parsed.astimezone(UTC)


def period_of(parts: list[Partition], default: Period = Period.MONTH) -> Period:
    """The period of the newest partition (an existing database keeps its own)."""
    for p in reversed(parts):
        if p.start is not None:
            return Period.WEEK if (p.end - p.start) <= timedelta(days=7) else Period.MONTH
    return default


def ensure_partitions(
    conn: Connection, until: datetime, *, period: Period | None = None
) -> list[str]:
    """Create partitions so that every instant before ``until`` has one; returns the names
    created. Idempotent; safe while the writer runs (it takes the locks PostgreSQL needs
    for ``CREATE TABLE … PARTITION OF``, briefly)."""
    parts = partitions(conn)
    chosen = period or period_of(parts)
    covered = parts[-1].end if parts else None
    created: list[str] = []
    if covered is None:  # no events_old yet: start at the period holding ``until``
        covered = chosen.start(until)
        conn.exec_driver_sql(
            f"CREATE TABLE {OLD} PARTITION OF events"
            f" FOR VALUES FROM (MINVALUE) TO ('{covered.isoformat()}')"
        )
        created.append(OLD)
    while covered < until:
        end = chosen.next(chosen.start(covered))
        name = f"events_p{covered:%Y%m%d}"
        conn.exec_driver_sql(
            f"CREATE TABLE {name} PARTITION OF events"
            f" FOR VALUES FROM ('{covered.isoformat()}') TO ('{end.isoformat()}')"
        )
        created.append(name)
        covered = end
    if created:
        log.info("events: created partitions %s", ", ".join(created))
    return created


def ensure_ahead(conn: Connection, now: datetime, ahead: int = AHEAD) -> list[str]:
    """Partitions up to the end of the ``ahead``-th period after the current one."""
    period = period_of(partitions(conn))
    until = period.next(period.start(now))
    for _ in range(ahead):
        until = period.next(until)
    return ensure_partitions(conn, until, period=period)


@dataclass(frozen=True, slots=True)
class DroppedPartition:
    name: str
    start: datetime | None
    end: datetime
    kept: int  # rows moved into events_old because an incident refers to them


def drop_partition(conn: Connection, part: Partition, keep: Iterable[str]) -> DroppedPartition:
    """Drop the oldest live partition whole, after moving the rows listed in ``keep`` (event
    ids incidents refer to) into ``events_old``, whose range then reaches the dropped one's
    end. One short transaction (the caller's): the detach and attach lock ``events``, so the
    writer waits for it, and nothing in it is proportional to the partition's size."""
    parts = partitions(conn)
    live = [p for p in parts if p.start is not None]
    old = next((p for p in parts if p.start is None), None)
    if old is None or not live or live[0].name != part.name:
        raise ValueError(f"{part.name} is not the oldest partition after {OLD}")
    keep_ids = sorted(set(keep))
    conn.exec_driver_sql(f"ALTER TABLE events DETACH PARTITION {OLD}")
    conn.exec_driver_sql(f"ALTER TABLE events DETACH PARTITION {part.name}")
    kept = 0
    if keep_ids:
        kept = conn.execute(
            text(f"INSERT INTO {OLD} SELECT * FROM {part.name} WHERE event_id = ANY(:ids)"),
            {"ids": keep_ids},
        ).rowcount
    conn.exec_driver_sql(f"DROP TABLE {part.name}")
    conn.exec_driver_sql(
        f"ALTER TABLE events ATTACH PARTITION {OLD}"
        f" FOR VALUES FROM (MINVALUE) TO ('{part.end.isoformat()}')"
    )
    log.info("events: dropped partition %s (%d rows kept for incidents)", part.name, kept)
    return DroppedPartition(part.name, part.start, part.end, int(kept))


def forget_keys(
    conn: Connection, start: datetime | None, end: datetime, keep: Iterable[str]
) -> int:
    """Delete up to ``KEY_DELETE_BATCH`` event ids of a dropped range (the redelivery of an
    event purged by retention is stored again, into ``events_old``, and purged on the next
    run); ids in ``keep`` stay. Returns how many were deleted: call until 0."""
    where = (
        "occurred_at < :end" if start is None else "occurred_at >= :start AND occurred_at < :end"
    )
    result = conn.execute(
        text(
            "DELETE FROM event_keys WHERE ctid = ANY(ARRAY("
            f"SELECT ctid FROM event_keys WHERE {where} AND NOT (event_id = ANY(:keep))"
            " LIMIT :n))"
        ),
        {"start": start, "end": end, "keep": sorted(set(keep)), "n": KEY_DELETE_BATCH},
    )
    return int(result.rowcount)
