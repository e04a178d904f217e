"""The district's questions (白杨眼, the 白杨舱 cockpit), as read queries over every compound:

- a plate's trace across the gates, a card's or person's trace across the doors (by keyed
  hash), newest first;
- one device's day, in order;
- counts per compound, kind and hour (or day) over a period: the cockpit (on PostgreSQL
  from the hourly counts the writer keeps);
- open incidents per compound.

Plain blocking functions (routes run them through ``Database.run``). Traces and a device's
day page by ``(occurred_at, seq)``, a key that rows inserted meanwhile cannot shift: a new
row lands before the first page or in its place in time, never twice and never in place of
one already handed out. On PostgreSQL every question is served by an index of migration
0007 (docs/datapool.md); the JSON attributes are read with the very expressions those
indexes are built on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Engine, Select, func, literal_column, select, tuple_

from gateway.api.cursor import InvalidCursor, encode_cursor
from gateway.api.queries import _EVENT_COLUMNS, _event_public
from gateway.api.schemas import EventPublic, Page
from gateway.events import DeviceKind
from gateway.incidents.lifecycle import Stage
from gateway.incidents.tables import incidents
from gateway.storage.postgres_tables import event_counts
from gateway.storage.tables import devices, events, sites
from gateway.storage.times import utc

PLATE_TRACE = "plate-trace"
PERSON_TRACE = "person-trace"
DEVICE_DAY = "device-day"
SITE_COUNTS = "site-counts"
OPEN_INCIDENTS = "open-incidents"

TraceField = Literal["plate", "card_ref", "person_ref"]
Bucket = Literal["hour", "day"]
OPEN_STAGES = tuple(
    s.value for s in (Stage.DISCOVERED, Stage.DISPATCHED, Stage.HANDLING, Stage.FEEDBACK)
)
_KIND_OF_FIELD: dict[str, DeviceKind] = {
    "plate": DeviceKind.GATE,
    "card_ref": DeviceKind.ACCESS,
    "person_ref": DeviceKind.ACCESS,
}


def attribute(engine: Engine, name: TraceField) -> ColumnElement[Any]:
    """``attributes ->> 'name'`` (PostgreSQL, as the indexes spell it: a literal key, not a
    bound parameter, or the planner cannot match the index) or SQLite's ``json_extract``."""
    if engine.dialect.name == "postgresql":
        return events.c.attributes.op("->>")(literal_column(f"'{name}'"))
    return func.json_extract(events.c.attributes, f"$.{name}")


# -- cursors over (occurred_at, seq) ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class TimeKey:
    at: datetime
    seq: int

    def encode(self, listing: str) -> str:
        return encode_cursor(listing, f"{self.at.isoformat()}|{self.seq}")

    @classmethod
    def decode(cls, value: str) -> TimeKey:
        at, sep, seq = value.partition("|")
        try:
            parsed = datetime.fromisoformat(at)
            number = int(seq)
        except ValueError:
            raise InvalidCursor("cursor is not valid: pass back next_cursor unchanged") from None
        if not sep or parsed.tzinfo is None:
            raise InvalidCursor("cursor is not valid: pass back next_cursor unchanged")
        return cls(parsed.astimezone(UTC), number)


@dataclass(frozen=True, slots=True)
class Window:
    """Which rows of a time-ordered listing: ``since`` ≤ occurred_at < ``until``, in the
    given ``sites`` (empty: every site), after the cursor ``after``."""

    since: datetime
    until: datetime
    sites: tuple[str, ...] = ()
    limit: int = 100
    after: TimeKey | None = None


def _time_page(
    engine: Engine, stmt: Select[Any], w: Window, listing: str, *, newest_first: bool
) -> Page[EventPublic]:
    key = tuple_(events.c.occurred_at, events.c.seq)
    stmt = stmt.where(events.c.occurred_at >= utc(w.since), events.c.occurred_at < utc(w.until))
    if w.sites:
        stmt = stmt.where(events.c.site.in_(w.sites))
    if w.after is not None:
        bound = tuple_(utc(w.after.at), w.after.seq)
        stmt = stmt.where(key < bound if newest_first else key > bound)
    if newest_first:
        stmt = stmt.order_by(events.c.occurred_at.desc(), events.c.seq.desc())
    else:
        stmt = stmt.order_by(events.c.occurred_at, events.c.seq)
    with engine.connect() as conn:
        rows = list(conn.execute(stmt.limit(w.limit + 1)))
    cursor = None
    if len(rows) > w.limit:
        rows = rows[: w.limit]
        last = rows[-1]
        cursor = TimeKey(utc(last.occurred_at), int(last.seq)).encode(listing)
    return Page[EventPublic](items=[_event_public(r) for r in rows], next_cursor=cursor)


def trace(engine: Engine, field: TraceField, value: str, w: Window) -> Page[EventPublic]:
    """Where a plate (gate events) or a card or person reference (access events) was seen
    in the window, newest first."""
    stmt = select(*_EVENT_COLUMNS).where(
        events.c.kind == _KIND_OF_FIELD[field].value, attribute(engine, field) == value
    )
    listing = PLATE_TRACE if field == "plate" else PERSON_TRACE
    return _time_page(engine, stmt, w, listing, newest_first=True)


def day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """The UTC instants a local calendar day starts and ends."""
    zone = ZoneInfo(tz)
    start = datetime(day.year, day.month, day.day, tzinfo=zone)
    end = start + timedelta(days=1)
    return start.astimezone(UTC), end.replace(tzinfo=zone).astimezone(UTC)


def device_day(engine: Engine, device_id: str, w: Window) -> Page[EventPublic]:
    """One device's events in the window (a local day), in order."""
    stmt = select(*_EVENT_COLUMNS).where(events.c.device_id == device_id)
    return _time_page(engine, stmt, w, DEVICE_DAY, newest_first=False)


# -- counts (the cockpit) ---------------------------------------------------------------


def known_sites(engine: Engine) -> list[str]:
    """Every compound the gateway knows: configured sites and sites of devices heard."""
    stmt = select(sites.c.id).union(select(devices.c.site))
    with engine.connect() as conn:
        return sorted(str(s) for s in conn.execute(stmt).scalars())


@dataclass(frozen=True, slots=True)
class Count:
    site: str
    at: datetime  # start of the hour or local day (aware, in the requested zone)
    kind: str
    count: int


def _hour_utc(engine: Engine) -> ColumnElement[Any]:
    if engine.dialect.name == "postgresql":
        return func.date_trunc("hour", func.timezone("UTC", events.c.occurred_at))
    return func.strftime("%Y-%m-%d %H:00:00", events.c.occurred_at)


def _ceil_hour(t: datetime) -> datetime:
    floor = t.replace(minute=0, second=0, microsecond=0)
    return floor if floor == t else floor + timedelta(hours=1)


def _counted_from_events(
    engine: Engine, sites: Sequence[str], since: datetime, until: datetime
) -> list[tuple[str, datetime, str, int]]:
    """``(site, UTC hour, kind, n)`` aggregated from the events themselves."""
    hour = _hour_utc(engine).label("hour")
    stmt = (
        select(events.c.site, hour, events.c.kind, func.count().label("n"))
        .where(
            events.c.site.in_(list(sites)),
            events.c.occurred_at >= utc(since),
            events.c.occurred_at < utc(until),
        )
        .group_by(events.c.site, hour, events.c.kind)
    )
    with engine.connect() as conn:
        return [
            (
                str(site),
                (at if isinstance(at, datetime) else datetime.fromisoformat(str(at))).replace(
                    tzinfo=UTC
                ),
                str(kind),
                int(n),
            )
            for site, at, kind, n in conn.execute(stmt)
        ]


def _counted_by_hour(
    engine: Engine, sites: Sequence[str], since: datetime, until: datetime
) -> list[tuple[str, datetime, str, int]]:
    """PostgreSQL: whole hours from the hourly counts the writer keeps (``event_counts``),
    the partial hours at either end from the events."""
    first, last = _ceil_hour(utc(since)), utc(until).replace(minute=0, second=0, microsecond=0)
    if first >= last:
        return _counted_from_events(engine, sites, since, until)
    c = event_counts.c
    stmt = select(c.site, c.hour, c.kind, c.n).where(
        c.site.in_(list(sites)), c.hour >= first, c.hour < last
    )
    with engine.connect() as conn:
        rows = [(str(s), utc(h), str(k), int(n)) for s, h, k, n in conn.execute(stmt)]
    if utc(since) < first:
        rows += _counted_from_events(engine, sites, since, first)
    if last < utc(until):
        rows += _counted_from_events(engine, sites, last, until)
    return rows


def site_counts(
    engine: Engine,
    sites: Sequence[str],
    since: datetime,
    until: datetime,
    *,
    bucket: Bucket = "hour",
    tz: str = "Asia/Shanghai",
) -> list[Count]:
    """Events per site, kind and hour (or local day) in ``[since, until)``, for the given
    sites (never empty: the caller names them, scoped). Counted per UTC hour: on PostgreSQL
    from the hourly counts the writer keeps, on SQLite from the events; hours become local
    hours or days here (zones a whole number of hours from UTC, as China's)."""
    if engine.dialect.name == "postgresql":
        rows = _counted_by_hour(engine, sites, since, until)
    else:
        rows = _counted_from_events(engine, sites, since, until)
    zone = ZoneInfo(tz)
    totals: dict[tuple[str, datetime, str], int] = defaultdict(int)
    for site, at, kind, n in rows:
        local = at.astimezone(zone)
        if bucket == "day":
            local = local.replace(hour=0, minute=0, second=0, microsecond=0)
        totals[(site, local, kind)] += n
    return [Count(s, at, k, n) for (s, at, k), n in sorted(totals.items())]


# -- open incidents per compound --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenIncidents:
    site: str | None  # None: incidents without a compound (hazard reports with a location)
    open: int
    by_severity: dict[str, int]
    oldest_opened_at: datetime


def open_incidents(
    engine: Engine,
    restrict: ColumnElement[bool] | None,
    *,
    limit: int = 100,
    after: str | None = None,
) -> tuple[list[OpenIncidents], str | None]:
    """Incidents not yet closed (discovered … feedback), per compound, in the caller's
    scope; paged by site id (incidents without a site first, keyed ``""``). The grouped
    rows are few (compounds × severities), so paging happens here."""
    c = incidents.c
    site_key = func.coalesce(c.site, "").label("site")
    stmt = (
        select(site_key, c.severity, func.count().label("n"), func.min(c.opened_at).label("oldest"))
        .where(c.stage.in_(OPEN_STAGES))
        .group_by(site_key, c.severity)
    )
    if restrict is not None:
        stmt = stmt.where(restrict)
    grouped: dict[str, list[Any]] = defaultdict(list)
    with engine.connect() as conn:
        for r in conn.execute(stmt):
            grouped[str(r.site)].append(r)
    chosen = sorted(s for s in grouped if after is None or s > after)
    cursor = encode_cursor(OPEN_INCIDENTS, chosen[limit - 1]) if len(chosen) > limit else None
    out = [
        OpenIncidents(
            site=site or None,
            open=sum(int(r.n) for r in grouped[site]),
            by_severity={str(r.severity): int(r.n) for r in grouped[site]},
            oldest_opened_at=utc(min(r.oldest for r in grouped[site])),
        )
        for site in chosen[:limit]
    ]
    return out, cursor
