"""``/api/web``, the console's incidents: who am I, display names, incidents scoped to the
signed-in user (list, and the detail with the alarm desk's context), a snapshot of an
incident's nearest camera, and the resident's alarm state and reports. Every route runs
behind the API's authentication seam, then the console's role seam (``web_user``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from sqlalchemy import Engine, or_, select

from gateway.api.cursor import decode_int_cursor
from gateway.api.deps import CurrentPrincipal, Database, DatabaseDep, Permission
from gateway.auth.guards import GridListing, GridListingDep
from gateway.incidents.lifecycle import OPEN_STAGES, Stage, allowed
from gateway.incidents.queries import INCIDENTS_LISTING, IncidentFilter, list_incidents
from gateway.incidents.tables import incidents
from gateway.web.incident_context import (
    desk_context,
    incident_audit,
    incident_names,
    jsonable,
    masked_contacts,
    nearest_camera,
    people_names,
    person_cells,
)
from gateway.web.routes.deps import UserDep, WebDep, scoped_incident
from gateway.web.session import can_see

MAX_LIST = 200
router = APIRouter(prefix="/api/web", tags=["web console"])


@router.get("/me")
async def me(user: UserDep, ctx: WebDep) -> dict[str, Any]:
    out = user.public()
    hh = ctx.grid.households.get(user.household or "")
    out["address"] = hh.address if hh else None
    out["cells"] = [
        {"id": c, "name": ctx.grid.areas[c].name}
        for c in user.scopes.get("cell", ())
        if c in ctx.grid.areas
    ]
    return out


@router.get("/people")
async def people(
    _: UserDep,
    principal: CurrentPrincipal,
    listing: GridListingDep,
    ctx: WebDep,
) -> dict[str, str]:
    """Display names by person id (names only: no phones) of the grid people in the
    caller's scope, as ``/api/grid/people`` lists them (``grid:read``)."""
    if not principal.allows(Permission.GRID_READ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "无权限 / needs permission grid:read")
    grid = ctx.grid
    return {
        pid: name
        for pid, name in people_names(grid).items()
        if listing.sees_person(grid, person_cells(grid, pid))
    }


@router.get("/incidents")
async def my_incidents(
    user: UserDep,
    ctx: WebDep,
    database: DatabaseDep,
    open_only: Annotated[bool, Query(alias="open")] = False,
    alarms: Annotated[bool, Query(description="P1 and panic only")] = False,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 50,
) -> dict[str, Any]:
    """Newest first, only what the user may see."""
    f = IncidentFilter(stages=tuple(s.value for s in OPEN_STAGES) if open_only else ())
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(10):  # scan at most 10 pages of the newest incidents
        page, next_cursor = await database.run(list_incidents, f, 200, cursor)
        for inc in page:
            if alarms and not (inc["severity"] == "P1" or inc["category"] == "panic"):
                continue
            if can_see(user, inc, ctx.grid):
                items.append(inc)
        if len(items) >= limit or next_cursor is None:
            break
        cursor = decode_int_cursor(next_cursor, INCIDENTS_LISTING)
    return {"items": items[:limit]}


@router.get("/incidents/{incident_id}")
async def incident(
    incident_id: int,
    user: UserDep,
    principal: CurrentPrincipal,
    ctx: WebDep,
) -> dict[str, Any]:
    """The incident (timeline, attachments, deliveries) plus the desk's context, and for
    callers with ``audit:read`` its rows of the audit log."""
    found = await scoped_incident(ctx, incident_id, user)
    found["allowed"] = allowed(Stage(found["stage"]), acknowledged=bool(found["acked_at"]))
    found["context"] = desk_context(ctx, found)
    # The household's contacts as the households listing shows them (grid:read, within
    # the scope): name, relation and the stored masked number, no audit row needed. The
    # desk may reveal the numbers in full (GET /api/grid/households/{id}/phones,
    # pii:read, audited there); the console only says whether to offer it.
    household = found["context"]["household"]
    listed = GridListing(principal.scope).household_ids  # None: every household
    if (
        household
        and principal.allows(Permission.GRID_READ)
        and (listed is None or household in listed)
    ):
        found["context"]["contacts"] = await Database(ctx.engine).run(masked_contacts, household)
    found["context"]["may_reveal_phones"] = principal.allows(Permission.PII_READ)
    found["evidence"] = [
        {**m.to_json(), "image_url": f"/api/evidence/{m.id}/image"}
        for m in ctx.evidence_for(f"incident-{incident_id}")
    ]
    if principal.allows(Permission.AUDIT_READ):
        found["audit"] = await Database(ctx.engine).run(incident_audit, incident_id)
    return jsonable(found)


@router.post("/incidents/{incident_id}/snapshot")
async def snapshot(incident_id: int, user: UserDep, ctx: WebDep) -> dict[str, Any]:
    """Take a snapshot from the incident's nearest camera now, kept as its evidence."""
    found = await scoped_incident(ctx, incident_id, user)
    camera = nearest_camera(ctx, found)
    if camera is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no camera near this incident")
    stored = await ctx.capture(f"incident-{incident_id}", camera, f"console:{user.id}")
    if stored is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"{camera}: no picture")
    return {**stored.to_json(), "image_url": f"/api/evidence/{stored.id}/image"}


# -- residents ------------------------------------------------------------------------
@router.get("/alarm/{incident_id}")
async def alarm_state(incident_id: int, user: UserDep, ctx: WebDep) -> dict[str, Any]:
    """What the resident's phone shows after sending: stage and who acknowledged."""
    found = await scoped_incident(ctx, incident_id, user)
    names = incident_names(ctx.grid, found)
    acks = [
        {"name": names.get(e["actor"], e["actor"]), "at": e["at"]}
        for e in found["timeline"]
        if e["action"] == "acknowledge"
    ]
    return jsonable(
        {
            "id": incident_id,
            "stage": found["stage"],
            "acked_at": found["acked_at"],
            "acks": acks,
        }
    )


@router.get("/my-reports")
async def my_reports(user: UserDep, database: DatabaseDep) -> dict[str, Any]:
    """The resident's alarms and 随手报 reports, newest first."""

    def query(engine: Engine) -> list[dict[str, Any]]:
        c = incidents.c
        cond = [c.reporter == user.id]
        if user.household:
            cond.append(c.household == user.household)
        stmt = (
            select(
                c.id,
                c.category,
                c.severity,
                c.title_zh,
                c.title_en,
                c.stage,
                c.opened_at,
                c.acked_at,
                c.closed_at,
            )
            .where(or_(*cond))
            .order_by(c.id.desc())
            .limit(50)
        )
        with engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    return jsonable({"items": await database.run(query)})
