"""The district's questions across every compound (docs/datapool.md): traces of a plate and
of a card or person, a device's day, counts for the cockpit, open incidents per compound.

Scoped like ``/api/events`` and ``/api/incidents``: events by the sites the caller covers,
incidents by cell or site. Card and person numbers never travel in a URL: ``GET
…/traces/person`` takes the keyed hash (``card:…`` / ``person:…``), and ``POST`` takes the
number in its body (``card`` or ``id_number``, redacted by the audit log), hashes it with
the gateway's key and answers the same page; the number is not stored or logged.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.api import district
from gateway.api.cursor import InvalidCursor, decode_str_cursor, encode_cursor
from gateway.api.deps import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    NO_SITE,
    CurrentPrincipal,
    Cursor,
    DatabaseDep,
    Limit,
    Permission,
    Sites,
    invalid,
    require,
    scoped_sites,
)
from gateway.api.schemas import EventPublic, Page
from gateway.auth.guards import IncidentScopeDep
from gateway.auth.masking import mask_event
from gateway.privacy import pseudonymise

MAX_TRACE_DAYS = 366
MAX_COUNT_DAYS = 92
DEFAULT_TRACE_DAYS = 30
REF = re.compile(r"^(card|person):[0-9a-f]{16}$")

router = APIRouter(
    prefix="/district", tags=["district"], dependencies=[Depends(require(Permission.EVENTS_READ))]
)
incidents_router = APIRouter(
    prefix="/district",
    tags=["district"],
    dependencies=[Depends(require(Permission.INCIDENTS_READ))],
)

Since = Annotated[
    datetime | None,
    Query(description="ISO 8601 with offset; inclusive. Default: `until` minus 30 days"),
]
Until = Annotated[
    datetime | None, Query(description="ISO 8601 with offset; exclusive. Default: now")
]
Zone = Annotated[str, Query(max_length=64, description="IANA time zone of days and hours")]


def _zone(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise invalid("tz", f"unknown time zone {tz!r}", tz) from None
    return tz


def _period(
    since: datetime | None, until: datetime | None, max_days: int
) -> tuple[datetime, datetime]:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise invalid(name, "timestamp needs a timezone offset, e.g. …+08:00 or …Z")
    end = (until or datetime.now(UTC)).astimezone(UTC)
    start = (since or end - timedelta(days=DEFAULT_TRACE_DAYS)).astimezone(UTC)
    if start >= end:
        raise invalid("until", "until must be later than since", end.isoformat())
    if end - start > timedelta(days=max_days):
        raise invalid("since", f"at most {max_days} days at once", start.isoformat())
    return start, end


def _after(cursor: str | None, listing: str) -> district.TimeKey | None:
    if cursor is None:
        return None
    try:
        return district.TimeKey.decode(decode_str_cursor(cursor, listing))
    except InvalidCursor as exc:
        raise invalid("cursor", str(exc), cursor) from None


def _sites(principal: CurrentPrincipal, site: list[str] | None) -> tuple[str, ...]:
    wanted = tuple(dict.fromkeys(s.strip() for s in site or () if s.strip()))
    return scoped_sites(principal, wanted)


def _masked(page: Page[EventPublic], principal: CurrentPrincipal) -> Page[EventPublic]:
    return page.model_copy(update={"items": [mask_event(e, principal) for e in page.items]})


# -- traces ------------------------------------------------------------------------------


@router.get("/traces/plate")
async def plate_trace(
    db: DatabaseDep,
    principal: CurrentPrincipal,
    plate: Annotated[str, Query(min_length=2, max_length=16, description="Plate as read")],
    since: Since = None,
    until: Until = None,
    site: Sites = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[EventPublic]:
    """车辆轨迹 / a plate's trace: its reads at every gate of the compounds the caller
    covers, newest first (plates are masked for roles without ``pii:read``)."""
    start, end = _period(since, until, MAX_TRACE_DAYS)
    window = district.Window(
        start, end, _sites(principal, site), limit, _after(cursor, district.PLATE_TRACE)
    )
    page = await db.run(district.trace, "plate", plate.strip().upper(), window)
    return _masked(page, principal)


class PersonQuery(BaseModel):
    """One of ``card`` (a card number), ``id_number`` (a person's number) or ``ref`` (the
    keyed hash, ``card:…`` / ``person:…``)."""

    model_config = ConfigDict(extra="forbid")
    card: str | None = Field(None, min_length=1, max_length=64)
    id_number: str | None = Field(None, min_length=1, max_length=64)
    ref: str | None = Field(None, pattern=REF.pattern)
    since: datetime | None = None
    until: datetime | None = None
    site: list[str] | None = Field(None, max_length=100)
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(None, max_length=512)

    @model_validator(mode="after")
    def _one(self) -> PersonQuery:
        given = [v for v in (self.card, self.id_number, self.ref) if v is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of card, id_number, ref")
        return self

    def reference(self) -> str:
        """The keyed hash, as the adapters make it (gateway.privacy.pseudonymise)."""
        if self.card is not None:
            return pseudonymise(self.card.strip(), "card")
        if self.id_number is not None:
            return pseudonymise(self.id_number.strip(), "person")
        assert self.ref is not None
        return self.ref


async def _person_page(
    db: DatabaseDep, principal: CurrentPrincipal, ref: str, q: PersonQuery
) -> Page[EventPublic]:
    start, end = _period(q.since, q.until, MAX_TRACE_DAYS)
    window = district.Window(
        start, end, _sites(principal, q.site), q.limit, _after(q.cursor, district.PERSON_TRACE)
    )
    field: district.TraceField = "card_ref" if ref.startswith("card:") else "person_ref"
    page = await db.run(district.trace, field, ref, window)
    return _masked(page, principal)


@router.get("/traces/person")
async def person_trace(
    db: DatabaseDep,
    principal: CurrentPrincipal,
    ref: Annotated[str, Query(pattern=REF.pattern, description="Keyed hash: card:… or person:…")],
    since: Since = None,
    until: Until = None,
    site: Sites = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[EventPublic]:
    """人员轨迹 / a card's or person's trace across the access doors, by keyed hash,
    newest first."""
    q = PersonQuery(ref=ref, since=since, until=until, site=site, limit=limit, cursor=cursor)
    return await _person_page(db, principal, ref, q)


@router.post("/traces/person")
async def person_trace_by_number(
    db: DatabaseDep, principal: CurrentPrincipal, q: PersonQuery
) -> Page[EventPublic]:
    """The same trace from a card or person number in the body (hashed here, never stored
    or logged); pass ``next_cursor`` back in the body for the next page."""
    return await _person_page(db, principal, q.reference(), q)


# -- a device's day ----------------------------------------------------------------------


@router.get("/devices/{device_id:path}/day")
async def device_day(
    device_id: Annotated[str, Path(min_length=1, max_length=128)],
    db: DatabaseDep,
    principal: CurrentPrincipal,
    day: Annotated[date, Query(description="Local calendar day, YYYY-MM-DD")],
    tz: Zone = "Asia/Shanghai",
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[EventPublic]:
    """设备当日 / one device's events of one local day, in order (only in compounds the
    caller covers: another compound's device has an empty day)."""
    start, end = district.day_bounds(day, _zone(tz))
    window = district.Window(
        start, end, _sites(principal, None), limit, _after(cursor, district.DEVICE_DAY)
    )
    return _masked(await db.run(district.device_day, device_id, window), principal)


# -- the cockpit -------------------------------------------------------------------------


class KindCount(BaseModel):
    model_config = ConfigDict(frozen=True)
    at: datetime = Field(..., description="Start of the hour or local day")
    kind: str
    count: int


class SiteCounts(BaseModel):
    model_config = ConfigDict(frozen=True)
    site: str
    total: int
    by_kind: dict[str, int]
    buckets: list[KindCount]


class CountsPage(BaseModel):
    """Counts for one page of compounds (by site id); ``next_cursor`` as elsewhere."""

    model_config = ConfigDict(frozen=True)
    since: datetime
    until: datetime
    bucket: Literal["hour", "day"]
    tz: str
    items: list[SiteCounts]
    next_cursor: str | None = None


@router.get("/counts")
async def site_counts(
    db: DatabaseDep,
    principal: CurrentPrincipal,
    site: Sites = None,
    since: Since = None,
    until: Until = None,
    bucket: Annotated[Literal["hour", "day"], Query(description="hour or day")] = "hour",
    tz: Zone = "Asia/Shanghai",
    limit: Annotated[int, Query(ge=1, le=100, description="Compounds per page")] = 20,
    cursor: Cursor = None,
) -> CountsPage:
    """驾驶舱 / events per compound and kind by hour or day (default: the last 30 days),
    for the compounds the caller covers, a page of compounds at a time. Without ``site``
    the compounds are those with devices, in id order."""
    start, end = _period(since, until, MAX_COUNT_DAYS)
    tz = _zone(tz)
    try:
        after = None if cursor is None else decode_str_cursor(cursor, district.SITE_COUNTS)
    except InvalidCursor as exc:
        raise invalid("cursor", str(exc), cursor) from None
    wanted = _sites(principal, site)
    if not site and principal.scope.everything:
        wanted = tuple(await db.run(district.known_sites))
    chosen = sorted(s for s in wanted if s != NO_SITE and (after is None or s > after))
    page, more = chosen[:limit], len(chosen) > limit
    counts = await db.run(district.site_counts, page, start, end, bucket=bucket, tz=tz)
    items = []
    for s in page:
        buckets = [KindCount(at=c.at, kind=c.kind, count=c.count) for c in counts if c.site == s]
        by_kind: dict[str, int] = {}
        for b in buckets:
            by_kind[b.kind] = by_kind.get(b.kind, 0) + b.count
        items.append(
            SiteCounts(site=s, total=sum(by_kind.values()), by_kind=by_kind, buckets=buckets)
        )
    next_cursor = encode_cursor(district.SITE_COUNTS, page[-1]) if more else None
    return CountsPage(
        since=start, until=end, bucket=bucket, tz=tz, items=items, next_cursor=next_cursor
    )


# -- open incidents per compound ---------------------------------------------------------


class OpenIncidentsPublic(BaseModel):
    model_config = ConfigDict(frozen=True)
    site: str | None = Field(..., description="null: incidents without a compound")
    open: int
    by_severity: dict[str, int]
    oldest_opened_at: datetime


@incidents_router.get("/incidents/open")
async def open_incidents(
    db: DatabaseDep,
    restrict: IncidentScopeDep,
    limit: Limit = DEFAULT_LIMIT,
    cursor: Cursor = None,
) -> Page[OpenIncidentsPublic]:
    """未结事件 / incidents not yet closed, per compound, in the caller's scope."""
    try:
        after = None if cursor is None else decode_str_cursor(cursor, district.OPEN_INCIDENTS)
    except InvalidCursor as exc:
        raise invalid("cursor", str(exc), cursor) from None
    rows, next_cursor = await db.run(district.open_incidents, restrict, limit=limit, after=after)
    items = [
        OpenIncidentsPublic(
            site=r.site, open=r.open, by_severity=r.by_severity, oldest_opened_at=r.oldest_opened_at
        )
        for r in rows
    ]
    return Page[OpenIncidentsPublic](items=items, next_cursor=next_cursor)
