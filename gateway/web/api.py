"""``/api/web``: what the console needs beyond the gateway's API.

- who am I (``/me``) and display names (``/people``);
- incidents scoped to the signed-in user (list, detail with the alarm desk's context:
  household address, neighbours notified, nearest camera, escalation deadline);
- the resident's one-button alarm and the state of their alarms and reports;
- a snapshot of an incident's nearest camera;
- the SVG site plan, profile and routing testers, and a device entry check.

Every route runs behind the API's authentication seam (mounted through ``extra_routers``)
and then the console's role seam (``gateway.web.session.current_user``).
"""

import json
from datetime import timedelta
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import Engine, Select, or_, select

from gateway.api.deps import CurrentPrincipal, Database, Permission
from gateway.audit.tables import audit_log, target_is_or_under
from gateway.auth.guards import GridListing, GridListingDep
from gateway.config.sites import DeviceConfig
from gateway.events import DeviceKind, utcnow
from gateway.grid.directory import GridDirectory
from gateway.grid.model import Role
from gateway.grid.store import list_households
from gateway.ids import DeviceId, Id
from gateway.incidents.categories import IncidentCategory, Severity, Source
from gateway.incidents.lifecycle import OPEN_STAGES, Stage, allowed
from gateway.incidents.queries import IncidentFilter, get_incident, list_incidents
from gateway.incidents.tables import incidents
from gateway.web import siteplan
from gateway.web.context import WebContext
from gateway.web.session import WebUser, can_see, current_user

MAX_LIST = 200


class ProfileTestIn(BaseModel):
    profile: str = Field(..., min_length=1, max_length=100)
    topic: str = Field(..., min_length=1, max_length=500)
    payload: str = Field(..., min_length=1, max_length=64 * 1024)
    site: Id | None = Field(None, description="Registry site for the device")
    kind: DeviceKind | None = None


class RoutesTestIn(BaseModel):
    category: IncidentCategory
    severity: Severity = Severity.P1
    source: Source = Source.RULE
    site: Id | None = None
    cell: Id | None = None
    device_id: DeviceId | None = None
    household: Id | None = None
    labels: dict[str, str] = Field(default_factory=dict)


async def _user(request: Request, ctx: WebContext) -> WebUser:
    user = await current_user(request, ctx.grid)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "sign in to the console first")
    return user


def _names(grid: GridDirectory) -> dict[str, str]:
    return {p.id: p.name for p in grid.people.values()}


def nearest_camera(ctx: WebContext, inc: dict[str, Any]) -> str | None:
    """The camera that sees the incident's device, else one linked to a device in the same
    building, else the camera of a device anywhere up the place tree."""
    cams = ctx.camera_ids()
    if not cams:
        return None
    if inc.get("device_id"):
        found = ctx.snapshots_camera_for(inc["device_id"])
        if found:
            return found
    site = ctx.registry.sites.get(inc.get("site") or "")
    place = inc.get("place")
    if site is None:
        return next(iter(cams), None)
    parents = {p.id: p.parent for p in site.places}

    def ancestors(p: str | None) -> list[str]:
        out: list[str] = []
        while p is not None and p not in out:
            out.append(p)
            p = parents.get(p)
        return out

    mine = ancestors(place)
    best: tuple[int, str] | None = None
    for dev in site.devices:
        cam = dev.camera if dev.camera in cams else (dev.id if dev.id in cams else None)
        if cam is None:
            continue
        theirs = ancestors(dev.place)
        shared = next((i for i, p in enumerate(mine) if p in theirs), None)
        if shared is not None and (best is None or shared < best[0]):
            best = (shared, cam)
    return best[1] if best else next(iter(sorted(cams)), None)


def _context(ctx: WebContext, inc: dict[str, Any]) -> dict[str, Any]:
    """What the alarm desk shows beside an incident."""
    grid = ctx.grid
    loc = grid.locate(
        site=inc.get("site"),
        device_id=inc.get("device_id"),
        household=inc.get("household"),
        cell=inc.get("cell"),
    )
    address = loc.address or ((inc.get("location") or {}).get("address") or "")
    deliveries = inc.get("deliveries", [])
    neighbours = sorted(
        {
            d["recipient_name"] or d["recipient_id"]
            for d in deliveries
            if d["target"] == "neighbours"
        }
    )
    deadline_s = ctx.routing.escalation.ack_deadline.get(Severity(inc["severity"]))
    deadlines = [d["ack_deadline"] for d in deliveries if d.get("ack_deadline")]
    first_deadline = min(deadlines) if deadlines else None
    if first_deadline is None and deadline_s is not None:
        first_deadline = inc["opened_at"] + timedelta(seconds=deadline_s)
    names = _incident_names(grid, inc)
    acks = [
        {"actor": e["actor"], "name": names.get(e["actor"], e["actor"]), "at": e["at"]}
        for e in inc.get("timeline", [])
        if e["action"] == "acknowledge"
    ]
    cell = grid.areas.get(inc.get("cell") or "")
    return {
        "address": address,
        "household": inc.get("household") or loc.household,
        "cell_name": cell.name if cell else None,
        "neighbours": neighbours,
        "group": loc.group,
        "camera": nearest_camera(ctx, inc),
        "ack_deadline": first_deadline,
        "ack_deadline_s": deadline_s,
        "acks": acks,
        "names": names,
        "staff": _staff(grid, inc.get("cell")),
    }


def _incident_names(grid: GridDirectory, inc: dict[str, Any]) -> dict[str, str]:
    """Names of the people this incident refers to (actors, assignees, recipients, the
    cell's staff): the console shows names, not ids, without listing the whole grid."""
    ids: set[str] = set(inc.get("assignees") or ())
    ids.update(str(e.get("actor")) for e in inc.get("timeline", ()))
    for d in inc.get("deliveries", ()):
        ids.update(str(v) for v in (d.get("recipient_id"), d.get("acked_by")) if v)
    ids.update(s["id"] for s in _staff(grid, inc.get("cell")))
    return {p.id: p.name for p in grid.people.values() if p.id in ids}


def _person_cells(grid: GridDirectory, person_id: str) -> dict[str, list[str]]:
    """A person's cell and beat assignments, as ``GridListing.sees_person`` takes them."""
    out: dict[str, list[str]] = {"cells": [], "beats": []}
    for (_role, kind, scope_id), ids in grid.assignments.items():
        if person_id in ids and kind in ("cell", "beat"):
            out[f"{kind}s"].append(scope_id)
    return out


def _staff(grid: GridDirectory, cell: str | None) -> list[dict[str, str]]:
    """Whom a dispatcher may assign: grid workers and heads of the cell (and its parents)."""
    if not cell:
        return []
    out: dict[str, dict[str, str]] = {}
    for role in (Role.GRID_WORKER, Role.STATION_GRID_WORKER, Role.GRID_HEAD):
        for p in grid.people_in_cell(role, cell):
            out.setdefault(p.id, {"id": p.id, "name": p.name, "role": role.value})
    return list(out.values())


def incident_audit_query(incident_id: int, dialect: str, limit: int = 100) -> Select[Any]:
    """The audit log's newest ``limit`` rows about one incident: its API and console paths
    and the paths below them (actions, attachments, snapshots), served by the target index
    (migration 0006)."""
    c = audit_log.c
    where = or_(
        *(
            target_is_or_under(f"{prefix}/incidents/{incident_id}", dialect)
            for prefix in ("/api", "/api/web")
        )
    )
    return (
        select(c.id, c.at, c.actor, c.role, c.action, c.status)
        .where(where)
        .order_by(c.id.desc())
        .limit(limit)
    )


def _incident_audit(engine: Engine, incident_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """The audit log's rows about one incident (its API and console routes), oldest first."""
    stmt = incident_audit_query(incident_id, engine.dialect.name, limit)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in reversed(conn.execute(stmt).all())]


def _masked_contacts(engine: Engine, household: str) -> list[dict[str, Any]] | None:
    """A household's contacts in masked form (``phone_masked``, e.g. 138****5678), as the
    households listing gives them; None when the grid has no such household."""
    found = list_households(engine, only=frozenset({household}))
    if not found:
        return None
    return [
        {k: c.get(k) for k in ("name", "relation", "phone_masked")} for c in found[0]["contacts"]
    ]


def _jsonable(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(value, default=str, ensure_ascii=False))
    return out


def build_web_api(ctx: WebContext) -> APIRouter:
    router = APIRouter(prefix="/api/web", tags=["web console"])

    def db() -> Database:
        return Database(ctx.engine)

    async def user_dep(request: Request) -> WebUser:
        return await _user(request, ctx)

    UserDep = Annotated[WebUser, Depends(user_dep)]

    async def scoped_incident(incident_id: int, user: WebUser) -> dict[str, Any]:
        """The incident, or 404 when missing *or* outside the user's scope (alike, so ids
        of other grids cannot be probed)."""
        found = await Database(ctx.engine).run(get_incident, incident_id)
        if found is None or not can_see(user, found, ctx.grid):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"未找到 / no incident {incident_id}")
        return found

    @router.get("/me")
    async def me(user: UserDep) -> dict[str, Any]:
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
        _: UserDep, principal: CurrentPrincipal, listing: GridListingDep
    ) -> dict[str, str]:
        """Display names by person id (names only: no phones) of the grid people in the
        caller's scope, as ``/api/grid/people`` lists them (``grid:read``)."""
        if not principal.allows(Permission.GRID_READ):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "无权限 / needs permission grid:read")
        grid = ctx.grid
        return {
            pid: name
            for pid, name in _names(grid).items()
            if listing.sees_person(grid, _person_cells(grid, pid))
        }

    @router.get("/incidents")
    async def my_incidents(
        user: UserDep,
        database: Database = Depends(db),
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
            from gateway.api.cursor import decode_int_cursor
            from gateway.incidents.queries import INCIDENTS_LISTING

            cursor = decode_int_cursor(next_cursor, INCIDENTS_LISTING)
        return {"items": items[:limit]}

    @router.get("/incidents/{incident_id}")
    async def incident(
        incident_id: int, user: UserDep, principal: CurrentPrincipal
    ) -> dict[str, Any]:
        """The incident (timeline, attachments, deliveries) plus the desk's context, and for
        callers with ``audit:read`` its rows of the audit log."""
        found = await scoped_incident(incident_id, user)
        found["allowed"] = allowed(Stage(found["stage"]), acknowledged=bool(found["acked_at"]))
        found["context"] = _context(ctx, found)
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
            found["context"]["contacts"] = await Database(ctx.engine).run(
                _masked_contacts, household
            )
        found["context"]["may_reveal_phones"] = principal.allows(Permission.PII_READ)
        found["evidence"] = [
            {**m.to_json(), "image_url": f"/api/evidence/{m.id}/image"}
            for m in ctx.evidence_for(f"incident-{incident_id}")
        ]
        if principal.allows(Permission.AUDIT_READ):
            found["audit"] = await Database(ctx.engine).run(_incident_audit, incident_id)
        return _jsonable(found)

    @router.post("/incidents/{incident_id}/snapshot")
    async def snapshot(incident_id: int, user: UserDep) -> dict[str, Any]:
        """Take a snapshot from the incident's nearest camera now, kept as its evidence."""
        found = await scoped_incident(incident_id, user)
        camera = nearest_camera(ctx, found)
        if camera is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no camera near this incident")
        stored = await ctx.capture(f"incident-{incident_id}", camera, f"console:{user.id}")
        if stored is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"{camera}: no picture")
        return {**stored.to_json(), "image_url": f"/api/evidence/{stored.id}/image"}

    # -- residents ------------------------------------------------------------------------
    @router.get("/alarm/{incident_id}")
    async def alarm_state(incident_id: int, user: UserDep) -> dict[str, Any]:
        """What the resident's phone shows after sending: stage and who acknowledged."""
        found = await scoped_incident(incident_id, user)
        names = _incident_names(ctx.grid, found)
        acks = [
            {"name": names.get(e["actor"], e["actor"]), "at": e["at"]}
            for e in found["timeline"]
            if e["action"] == "acknowledge"
        ]
        return _jsonable(
            {
                "id": incident_id,
                "stage": found["stage"],
                "acked_at": found["acked_at"],
                "acks": acks,
            }
        )

    @router.get("/my-reports")
    async def my_reports(user: UserDep, database: Database = Depends(db)) -> dict[str, Any]:
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

        return _jsonable({"items": await database.run(query)})

    # -- site plan, devices, profiles, routing ---------------------------------------------
    @router.get("/sites")
    async def sites(_: UserDep, principal: CurrentPrincipal) -> list[dict[str, Any]]:
        """The compounds the caller covers (a property manager: their own)."""
        return [
            {"id": s.id, "name": s.name, "address": s.address, "devices": len(s.devices)}
            for s in ctx.registry.sites.values()
            if principal.scope.sees_site(s.id)
        ]

    @router.get("/siteplan/{site_id}.svg", response_class=Response)
    async def plan(site_id: str, _: UserDep, principal: CurrentPrincipal) -> Response:
        """The compound's plan: only of a compound the caller covers (404 otherwise)."""
        site = ctx.registry.sites.get(site_id)
        if site is None or not principal.scope.sees_site(site.id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"未找到 / no site {site_id!r}")
        return Response(
            siteplan.render(site),
            media_type="image/svg+xml",
            headers={"Cache-Control": "no-cache"},
        )

    @router.get("/cameras")
    async def cameras(_: UserDep, principal: CurrentPrincipal) -> list[str]:
        """Cameras with live view, of the compounds the caller covers."""
        if not principal.allows(Permission.LIVE_VIEW):
            return []

        def visible(camera: str) -> bool:
            found = ctx.registry.device(camera)
            return principal.scope.everything or (
                found is not None and principal.scope.sees_site(found[0].id)
            )

        return sorted(c for c in ctx.camera_ids() if visible(c))

    @router.get("/profiles")
    async def profiles(user: UserDep) -> list[str]:
        _need(user, "devices")
        return ctx.profile_ids()

    @router.post("/profile-test")
    async def profile_test(body: ProfileTestIn, user: UserDep) -> dict[str, Any]:
        """Normalise a pasted payload with one profile: the events, or exactly why none."""
        _need(user, "devices")
        return ctx.profile_test(body.profile, body.topic, body.payload, body.site, body.kind)

    @router.post("/device-check")
    async def device_check(body: dict[str, Any], user: UserDep) -> dict[str, Any]:
        """Check a device entry without storing it (``PUT /api/devices/{id}`` stores it),
        like ``lianfang config check`` does, and give its line for ``devices:`` of the site
        file, for sites kept in Git."""
        _need(user, "devices")
        site_id = str(body.pop("site", "") or "")
        if site_id not in ctx.registry.sites:
            return {"ok": False, "errors": [f"site: unknown site {site_id!r}"]}
        entry = {k: v for k, v in body.items() if v not in (None, "")}
        try:
            device = DeviceConfig.model_validate(entry)
        except ValidationError as exc:
            return {
                "ok": False,
                "errors": [
                    f"{'.'.join(str(p) for p in e['loc']) or 'device'}: {e['msg']}"
                    for e in exc.errors()
                ],
            }
        errors = [f"{field}: {msg}" for field, msg in ctx.device_problems(site_id, device)]
        line = yaml.safe_dump(
            [device.model_dump(exclude_none=True, mode="json")],
            allow_unicode=True,
            default_flow_style=None,
            sort_keys=False,
            width=200,
        ).strip()
        return {
            "ok": not errors,
            "errors": errors,
            "action": "edit" if ctx.registry.device(device.id) else "add",
            "file": f"config/sites/{site_id}.yaml",
            "yaml": line,
        }

    @router.post("/routes-test")
    async def routes_test(body: RoutesTestIn, user: UserDep) -> dict[str, Any]:
        """Which routes match and whom an incident would reach (``lianfang routes test``)."""
        _need(user, "rules")
        return ctx.routes_test(body.model_dump(mode="json"))

    @router.get("/now")
    async def now() -> dict[str, str]:
        """The gateway clock (the escalation countdown runs on it)."""
        return {"now": utcnow().isoformat()}

    return router


def _need(user: WebUser, page: str) -> None:
    if not user.may_open(page):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"the {page} page is not for your role")
