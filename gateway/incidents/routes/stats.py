"""``/api/stats``: today's and this month's figures and the monthly ranking, in the
gateway's time zone, of the incidents in the caller's scope."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Response

from gateway.api.deps import Database, DatabaseDep, require
from gateway.auth.guards import IncidentScopeDep
from gateway.auth.principal import Permission
from gateway.incidents import stats as st
from gateway.incidents.queries import load_period
from gateway.incidents.routes.deps import IncidentsContext, IncidentsDep

router = APIRouter(
    prefix="/api/stats",
    tags=["statistics"],
    dependencies=[Depends(require(Permission.STATS_READ))],
)
Period = Annotated[str, Query(pattern="^(today|month)$")]
RankBy = Annotated[str, Query(pattern="^(community|grid_worker)$")]


def period_bounds(tz: str, period: str, day: date | None) -> tuple[datetime, datetime]:
    zone = ZoneInfo(tz)
    today = day or datetime.now(zone).date()
    if period == "today":
        start = datetime.combine(today, time(), zone)
        return start, start + timedelta(days=1)
    first = today.replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return datetime.combine(first, time(), zone), datetime.combine(nxt, time(), zone)


async def _facts(
    incidents: IncidentsContext, db: Database, period: str, day: date | None, restrict: Any
) -> list[st.Facts]:
    since, until = period_bounds(incidents.timezone, period, day)
    rows, entries = await db.run(load_period, since, until, restrict)
    return st.facts(rows, entries)


@router.get("/summary")
async def summary(
    restrict: IncidentScopeDep,
    db: DatabaseDep,
    incidents: IncidentsDep,
    period: Period = "today",
    day: date | None = None,
) -> dict[str, Any]:
    """Today's or this month's figures (in the gateway's time zone): counts by category
    and stage, handling and closing rates, share closed inside the cell, p50/p90 seconds
    to acknowledge and to close. ``day`` picks another day (or month)."""
    s = st.summarise(await _facts(incidents, db, period, day, restrict))
    return {"period": period, **vars(s)}


@router.get("/ranking")
async def ranking(
    restrict: IncidentScopeDep,
    db: DatabaseDep,
    incidents: IncidentsDep,
    by: RankBy = "community",
    day: date | None = None,
) -> dict[str, Any]:
    """Monthly ranking (scoring formula in docs/incidents.md)."""
    rows = st.rank(await _facts(incidents, db, "month", day, restrict), by)
    return {"by": by, "rows": [vars(r) for r in rows]}


@router.get("/ranking.csv")
async def ranking_csv(
    restrict: IncidentScopeDep,
    db: DatabaseDep,
    incidents: IncidentsDep,
    by: RankBy = "community",
    day: date | None = None,
) -> Response:
    rows = st.rank(await _facts(incidents, db, "month", day, restrict), by)
    month = (day or date.today()).strftime("%Y-%m")
    return Response(
        st.ranking_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="ranking-{by}-{month}.csv"'},
    )
