"""HTTP API: incidents, workflow actions, attachments, 随手报, acknowledgements, live
notifications and statistics.

Routers are built for one running ``IncidentsRuntime`` (``build_routers``). The actor and
role recorded on the timeline are the authenticated principal's (``actor``/``role`` in
request bodies are ignored); object-level scope checks are the dependencies of
``gateway.auth.guards``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Protocol
from zoneinfo import ZoneInfo

import anyio
from fastapi import (
    APIRouter,
    Depends,
    HTTPException,
    Query,
    Request,
    Response,
    WebSocket,
    status,
)
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sse_starlette import EventSourceResponse, ServerSentEvent

from gateway.api.cursor import InvalidCursor, decode_int_cursor
from gateway.api.deps import CurrentPrincipal, Database, Principal, invalid, require
from gateway.auth.guards import (
    AcknowledgeableNotification,
    IncidentScopeDep,
    LivePush,
    LivePushDep,
    VisibleIncident,
    action_allowed,
    household_allowed,
    own_household,
    report_rate,
    visible_incident,
)
from gateway.auth.principal import Permission
from gateway.grid.directory import GridDirectory
from gateway.ids import DeviceId, Id
from gateway.incidents import attachments as att
from gateway.incidents import stats as st
from gateway.incidents.assignees import unassignable
from gateway.incidents.categories import IncidentCategory, Severity, Source
from gateway.incidents.lifecycle import USER_ACTIONS, Action, IllegalTransition, Stage, allowed
from gateway.incidents.queries import (
    INCIDENTS_LISTING,
    IncidentFilter,
    get_attachment,
    get_incident,
    list_incidents,
    load_period,
)
from gateway.incidents.service import (
    AckOutcome,
    ActionInput,
    IncidentNotFound,
    IncidentService,
    Report,
)
from gateway.notify.console import NotificationHub


class IncidentPermission(StrEnum):
    """Permissions of these routes (checked with ``Principal.allows``)."""

    INCIDENTS_READ = "incidents:read"
    INCIDENTS_WRITE = "incidents:write"  # workflow actions, attachments, acknowledgements
    INCIDENTS_REPORT = "incidents:report"  # manual reports and residents' 随手报
    STATS_READ = "stats:read"
    GRID_READ = "grid:read"
    GRID_WRITE = "grid:write"


def require_permission(permission: IncidentPermission) -> Callable[[Principal], Principal]:
    def check(principal: CurrentPrincipal) -> Principal:
        if not principal.allows(permission.value):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"needs permission {permission}")
        return principal

    return check


class IncidentsContext(Protocol):
    @property
    def engine(self) -> Engine: ...

    @property
    def service(self) -> IncidentService: ...

    @property
    def hub(self) -> NotificationHub: ...

    @property
    def data_dir(self) -> Path: ...

    @property
    def timezone(self) -> str: ...

    @property
    def grid(self) -> GridDirectory: ...


# -- request bodies ---------------------------------------------------------------------


class GeoPoint(BaseModel):
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    address: str = Field("", max_length=200)


class ReportIn(BaseModel):
    """A manual report by staff (patrol, phone call)."""

    category: IncidentCategory
    severity: Severity = Severity.P3
    title_zh: str = Field(..., min_length=1, max_length=300)
    title_en: str = Field("", max_length=300)
    description: str = Field("", max_length=4000)
    site: Id | None = None
    cell: Id | None = None
    place: Id | None = None
    device_id: DeviceId | None = None
    household: Id | None = None
    location: GeoPoint | None = None
    actor: str | None = Field(None, max_length=100, description="Who files it (person id)")
    role: str = Field("", max_length=32)


class HazardIn(BaseModel):
    """A resident's 随手报: text, location; photos are uploaded as attachments after."""

    text: str = Field(..., min_length=1, max_length=2000)
    location: GeoPoint
    category: IncidentCategory = IncidentCategory.HAZARD
    site: Id | None = None
    cell: Id | None = None
    household: Id | None = None
    reporter: str | None = Field(None, max_length=100)


class ActionIn(BaseModel):
    action: Action
    actor: str | None = Field(None, max_length=100)
    role: str = Field("", max_length=32)
    note: str = Field("", max_length=4000)
    assignees: list[Id] = Field(
        default_factory=list, max_length=20, description="Grid people in the incident's scope"
    )
    score: int | None = Field(None, description="evaluate: 1–5")
    attachments: list[str] = Field(default_factory=list, max_length=20)


class AckIn(BaseModel):
    actor: str | None = Field(None, max_length=100)


class Created(BaseModel):
    id: int


class AcknowledgementOut(BaseModel):
    outcome: AckOutcome = Field(..., description="recorded, or duplicate: taken before")
    acked_at: datetime
    acked_by: str = Field(..., description="Who took the incident")


class StageOut(BaseModel):
    id: int
    stage: Stage
    allowed: list[Action]
    acknowledgement: AcknowledgementOut | None = Field(
        None, description="acknowledge: recorded, or a repeat that recorded nothing"
    )


# -- helpers ----------------------------------------------------------------------------


def _values(raw: list[str] | None) -> tuple[str, ...]:
    return tuple(p.strip() for v in raw or [] for p in v.split(",") if p.strip())


def _checked(raw: list[str] | None, enum: type[StrEnum], param: str) -> tuple[str, ...]:
    values = _values(raw)
    for v in values:
        if v not in enum._value2member_map_:
            allowed_values = ", ".join(enum._value2member_map_)
            raise invalid(param, f"unknown {param} {v!r}; expected one of: {allowed_values}", v)
    return values


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


def build_routers(ctx: IncidentsContext) -> list[APIRouter]:
    read = [Depends(require_permission(IncidentPermission.INCIDENTS_READ))]
    write = [Depends(require_permission(IncidentPermission.INCIDENTS_WRITE))]
    report = [Depends(require_permission(IncidentPermission.INCIDENTS_REPORT))]
    hazards = [Depends(require(Permission.HAZARD_REPORT))]
    in_household = Depends(household_allowed)
    stats_read = [Depends(require_permission(IncidentPermission.STATS_READ))]

    def db() -> Database:
        return Database(ctx.engine)

    incidents_router = APIRouter(prefix="/api/incidents", tags=["incidents"])
    reports_router = APIRouter(prefix="/api", tags=["incidents"])
    notify_router = APIRouter(prefix="/api/notifications", tags=["notifications"])
    stats_router = APIRouter(prefix="/api/stats", tags=["statistics"], dependencies=stats_read)

    # -- incidents ------------------------------------------------------------------------
    @incidents_router.get("", dependencies=read)
    async def list_(
        restrict: IncidentScopeDep,
        database: Database = Depends(db),
        stage: Annotated[list[str] | None, Query()] = None,
        category: Annotated[list[str] | None, Query()] = None,
        severity: Annotated[list[str] | None, Query()] = None,
        source: Annotated[list[str] | None, Query()] = None,
        cell: Annotated[list[str] | None, Query()] = None,
        site: Annotated[list[str] | None, Query()] = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: Annotated[str | None, Query(max_length=512)] = None,
    ) -> dict[str, Any]:
        """Newest first. Filters repeat or take comma-separated values."""
        for name, value in (("since", since), ("until", until)):
            if value is not None and value.tzinfo is None:
                raise invalid(name, "timestamp needs a timezone offset", value.isoformat())
        try:
            after = None if cursor is None else decode_int_cursor(cursor, INCIDENTS_LISTING)
        except InvalidCursor as exc:
            raise invalid("cursor", str(exc), cursor) from None
        f = IncidentFilter(
            stages=_checked(stage, Stage, "stage"),
            categories=_checked(category, IncidentCategory, "category"),
            severities=_checked(severity, Severity, "severity"),
            sources=_checked(source, Source, "source"),
            cells=_values(cell),
            sites=_values(site),
            since=since,
            until=until,
            restrict=restrict,
        )
        items, next_cursor = await database.run(list_incidents, f, limit, after)
        return {"items": items, "next_cursor": next_cursor}

    @incidents_router.get("/{incident_id}", dependencies=[*read, VisibleIncident])
    async def detail(incident_id: int, database: Database = Depends(db)) -> dict[str, Any]:
        """The incident with its timeline, attachments and delivery state per receiver."""
        found = await database.run(get_incident, incident_id)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id}")
        found["allowed"] = allowed(
            Stage(found["stage"]), acknowledged=found["acked_at"] is not None
        )
        return found

    @incidents_router.post(
        "",
        status_code=status.HTTP_201_CREATED,
        dependencies=[*report, in_household],
        response_model=Created,
    )
    async def create(body: ReportIn, principal: CurrentPrincipal) -> Created:
        new_id = await ctx.service.report(
            Report(
                source=Source.MANUAL,
                category=body.category,
                severity=body.severity,
                title_zh=body.title_zh,
                title_en=body.title_en,
                description=body.description,
                site=body.site,
                cell=body.cell,
                place=body.place,
                device_id=body.device_id,
                household=body.household,
                location=body.location.model_dump() if body.location else None,
                reporter=principal.actor,
                role=principal.role,
            )
        )
        return Created(id=new_id)

    @incidents_router.post(
        "/{incident_id}/actions",
        dependencies=[*write, VisibleIncident, Depends(action_allowed)],
        response_model=StageOut,
        responses={409: {"description": "Not allowed in the incident's stage"}},
    )
    async def act(
        incident_id: int,
        body: ActionIn,
        principal: CurrentPrincipal,
        place: Annotated[dict[str, Any], Depends(visible_incident)],
    ) -> StageOut | JSONResponse:
        """Workflow actions: dispatch, accept, feedback, verify, reject, evaluate, false_alarm,
        cancel, reopen, acknowledge, comment, attach. An action the stage does not allow is
        refused with 409 and the reason. ``acknowledge`` takes the incident (确认接警: its
        escalation stops); a repeat records nothing and answers ``duplicate``."""
        if body.action not in USER_ACTIONS:
            raise invalid("action", f"{body.action.value} is recorded by the system only")
        wrong = unassignable(
            ctx.grid,
            body.assignees,
            cell=place["cell"],
            site=place["site"],
            household=place["household"],
        )
        if wrong:
            raise RequestValidationError(
                [
                    {
                        "type": "value_error",
                        "loc": ("body", "assignees"),
                        "msg": "不是本事件范围内的网格人员 / not a grid person in the "
                        f"incident's scope: {', '.join(wrong)}",
                        "input": wrong,
                    }
                ]
            )
        try:
            acted = await ctx.service.apply(
                incident_id,
                ActionInput(
                    body.action,
                    principal.actor,
                    principal.role,
                    body.note,
                    tuple(body.assignees),
                    body.score,
                    tuple(body.attachments),
                ),
            )
        except IncidentNotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id}") from None
        except IllegalTransition as exc:
            return JSONResponse(
                {
                    "detail": exc.reason,
                    "stage": exc.stage.value,
                    "allowed": [a.value for a in allowed(exc.stage)],
                },
                status_code=status.HTTP_409_CONFLICT,
            )
        ack = acted.acknowledgement
        return StageOut(
            id=incident_id,
            stage=acted.stage,
            allowed=allowed(acted.stage, acknowledged=acted.acknowledged),
            acknowledgement=None
            if ack is None
            else AcknowledgementOut(
                outcome=ack.outcome, acked_at=ack.acked_at, acked_by=ack.acked_by
            ),
        )

    @incidents_router.post(
        "/{incident_id}/attachments",
        status_code=status.HTTP_201_CREATED,
        dependencies=[*write, VisibleIncident],
        openapi_extra={"requestBody": {"content": {t: {} for t in att.TYPES}, "required": True}},
    )
    async def upload(
        incident_id: int,
        request: Request,
        principal: CurrentPrincipal,
        filename: Annotated[str, Query(max_length=200)] = "photo",
        actor: Annotated[str | None, Query(max_length=100)] = None,
        role: Annotated[str, Query(max_length=32)] = "",
        note: Annotated[str, Query(max_length=1000)] = "",
    ) -> dict[str, Any]:
        """Upload one image as the raw request body (JPEG, PNG or WebP, recognised by its
        bytes; at most 10 MiB)."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > att.MAX_BYTES:
            raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "attachment too large")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > att.MAX_BYTES:
                raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "attachment too large")
            chunks.append(chunk)
        data = b"".join(chunks)
        if not data:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "empty body")
        try:
            row = await ctx.service.attach(
                incident_id,
                data,
                filename=filename,
                actor=principal.actor,
                role=principal.role,
                note=note,
                data_dir=ctx.data_dir,
            )
        except IncidentNotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id}") from None
        except att.BadAttachment as exc:
            raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, str(exc)) from None
        return {k: v for k, v in row.items() if k != "uploaded_at"} | {
            "uploaded_at": row["uploaded_at"].isoformat()
        }

    @incidents_router.get(
        "/{incident_id}/attachments/{attachment_id}", dependencies=[*read, VisibleIncident]
    )
    async def download(
        incident_id: int, attachment_id: str, database: Database = Depends(db)
    ) -> FileResponse:
        row = await database.run(get_attachment, incident_id, attachment_id)
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such attachment")
        path = att.path_for(ctx.data_dir, incident_id, row["id"], row["content_type"])
        return FileResponse(
            path,
            media_type=row["content_type"],
            headers={
                "X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'",
            },
        )

    @reports_router.post(
        "/hazard-reports",
        status_code=status.HTTP_201_CREATED,
        dependencies=[*hazards, in_household, Depends(report_rate)],
        response_model=Created,
    )
    async def hazard(body: HazardIn, principal: CurrentPrincipal) -> Created:
        """随手报: a resident reports a hazard; the cell's grid worker is sent to verify.
        Add photos with POST /api/incidents/{id}/attachments."""
        short = body.text.strip().splitlines()[0][:40]
        new_id = await ctx.service.report(
            Report(
                source=Source.HAZARD,
                category=body.category,
                severity=Severity.P3,
                title_zh=f"随手报：{short}",
                title_en=f"Resident hazard report: {short}",
                description=body.text,
                site=body.site,
                cell=body.cell,
                household=body.household or own_household(principal),
                location=body.location.model_dump(),
                reporter=principal.actor,
                role="resident",
            )
        )
        return Created(id=new_id)

    # -- notifications --------------------------------------------------------------------
    @notify_router.post(
        "/{notification_id}/ack", dependencies=[*write, AcknowledgeableNotification]
    )
    async def ack(
        notification_id: Annotated[int, PathParam(ge=1, le=2**62)],
        body: AckIn,
        principal: CurrentPrincipal,
    ) -> dict[str, Any]:
        """Acknowledge a notification (for its recipient: every channel it was sent on).
        ``outcome``: recorded, or duplicate (acknowledged before: nothing recorded);
        ``took_incident``: it was the incident's acknowledgement (its escalation stops)."""
        result = await ctx.service.acknowledge_notification(notification_id, principal.actor)
        if result.outcome is AckOutcome.NOT_FOUND:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no notification {notification_id}")
        return {
            "id": notification_id,
            "acknowledged": True,
            "outcome": result.outcome.value,
            "incident_id": result.incident_id,
            "took_incident": result.took_incident,
        }

    async def _items(push: LivePush) -> AsyncIterator[dict[str, Any]]:
        stream = ctx.hub.watch(push.admits)
        try:
            async for item in stream:
                yield item
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    @notify_router.get("/stream", dependencies=read, response_class=EventSourceResponse)
    async def stream(push: LivePushDep) -> EventSourceResponse:
        """Live console push (SSE): notifications for the console channel, delivery updates
        and incident changes — only about incidents in the caller's scope (or notifications
        addressed to the caller). ``recipient`` (e.g. ``police-desk/beat-1``) narrows it."""

        async def events() -> AsyncIterator[ServerSentEvent]:
            async for item in _items(push):
                if item.get("type") == "subscribed":
                    yield ServerSentEvent(comment="subscribed")
                else:
                    yield ServerSentEvent(
                        json.dumps(item, ensure_ascii=False, default=str),
                        event=str(item.get("type")),
                    )

        return EventSourceResponse(events(), ping=15, headers={"Cache-Control": "no-cache"})

    @notify_router.websocket("/ws", dependencies=read)
    async def ws(websocket: WebSocket, push: LivePushDep) -> None:
        """WebSocket twin of /api/notifications/stream (JSON text messages), scoped alike."""
        await websocket.accept()
        async with anyio.create_task_group() as tg:

            async def until_disconnect() -> None:
                while (await websocket.receive())["type"] != "websocket.disconnect":
                    pass
                tg.cancel_scope.cancel()

            tg.start_soon(until_disconnect)
            async for item in _items(push):
                with anyio.fail_after(30):
                    await websocket.send_text(json.dumps(item, ensure_ascii=False, default=str))
            tg.cancel_scope.cancel()

    # -- statistics -----------------------------------------------------------------------
    async def _facts(
        database: Database, period: str, day: date | None, restrict: Any
    ) -> list[st.Facts]:
        since, until = period_bounds(ctx.timezone, period, day)
        rows, entries = await database.run(load_period, since, until, restrict)
        return st.facts(rows, entries)

    @stats_router.get("/summary")
    async def summary(
        restrict: IncidentScopeDep,
        database: Database = Depends(db),
        period: Period = "today",
        day: date | None = None,
    ) -> dict[str, Any]:
        """Today's or this month's figures (in the gateway's time zone): counts by category
        and stage, handling and closing rates, share closed inside the cell, p50/p90 seconds
        to acknowledge and to close. ``day`` picks another day (or month)."""
        s = st.summarise(await _facts(database, period, day, restrict))
        return {"period": period, **vars(s)}

    @stats_router.get("/ranking")
    async def ranking(
        restrict: IncidentScopeDep,
        database: Database = Depends(db),
        by: RankBy = "community",
        day: date | None = None,
    ) -> dict[str, Any]:
        """Monthly ranking (scoring formula in docs/incidents.md)."""
        rows = st.rank(await _facts(database, "month", day, restrict), by)
        return {"by": by, "rows": [vars(r) for r in rows]}

    @stats_router.get("/ranking.csv")
    async def ranking_csv(
        restrict: IncidentScopeDep,
        database: Database = Depends(db),
        by: RankBy = "community",
        day: date | None = None,
    ) -> Response:
        rows = st.rank(await _facts(database, "month", day, restrict), by)
        month = (day or date.today()).strftime("%Y-%m")
        return Response(
            st.ranking_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="ranking-{by}-{month}.csv"'},
        )

    return [incidents_router, reports_router, notify_router, stats_router]
