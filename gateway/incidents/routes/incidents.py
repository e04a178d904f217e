"""``/api/incidents`` and ``/api/hazard-reports``: incidents, workflow actions, attachments
and residents' 随手报. The actor and role recorded on the timeline are the authenticated
principal's (``actor``/``role`` in request bodies are ignored); object-level scope checks are
the dependencies of ``gateway.auth.guards``."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse

from gateway.api.cursor import InvalidCursor, decode_int_cursor
from gateway.api.deps import CurrentPrincipal, DatabaseDep, invalid, require
from gateway.auth.guards import (
    IncidentScopeDep,
    VisibleIncident,
    action_allowed,
    household_allowed,
    own_household,
    report_rate,
    visible_incident,
)
from gateway.auth.principal import Permission
from gateway.grid.directory import GridDirectory
from gateway.incidents import attachments as att
from gateway.incidents.assignees import unassignable
from gateway.incidents.categories import IncidentCategory, Severity, Source
from gateway.incidents.lifecycle import USER_ACTIONS, IllegalTransition, Stage, allowed
from gateway.incidents.queries import (
    INCIDENTS_LISTING,
    IncidentFilter,
    get_attachment,
    get_incident,
    list_incidents,
)
from gateway.incidents.routes.deps import READ, REPORT, WRITE, IncidentsDep
from gateway.incidents.routes.models import (
    AcknowledgementOut,
    ActionIn,
    Created,
    HazardIn,
    ReportIn,
    StageOut,
)
from gateway.incidents.service import Acted, ActionInput, IncidentNotFound, Report

router = APIRouter(prefix="/api/incidents", tags=["incidents"])
reports_router = APIRouter(prefix="/api", tags=["incidents"])
HAZARDS = [Depends(require(Permission.HAZARD_REPORT))]
IN_HOUSEHOLD = Depends(household_allowed)


def _values(raw: list[str] | None) -> tuple[str, ...]:
    return tuple(p.strip() for v in raw or [] for p in v.split(",") if p.strip())


def _checked(raw: list[str] | None, enum: type[StrEnum], param: str) -> tuple[str, ...]:
    values = _values(raw)
    for v in values:
        if v not in enum._value2member_map_:
            allowed_values = ", ".join(enum._value2member_map_)
            raise invalid(param, f"unknown {param} {v!r}; expected one of: {allowed_values}", v)
    return values


@router.get("", dependencies=READ)
async def list_(
    restrict: IncidentScopeDep,
    db: DatabaseDep,
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
    items, next_cursor = await db.run(list_incidents, f, limit, after)
    return {"items": items, "next_cursor": next_cursor}


@router.get("/{incident_id}", dependencies=[*READ, VisibleIncident])
async def detail(incident_id: int, db: DatabaseDep) -> dict[str, Any]:
    """The incident with its timeline, attachments and delivery state per receiver."""
    found = await db.run(get_incident, incident_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id}")
    found["allowed"] = allowed(Stage(found["stage"]), acknowledged=found["acked_at"] is not None)
    return found


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[*REPORT, IN_HOUSEHOLD],
    response_model=Created,
)
async def create(body: ReportIn, principal: CurrentPrincipal, incidents: IncidentsDep) -> Created:
    new_id = await incidents.service.report(
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


@router.post(
    "/{incident_id}/actions",
    dependencies=[*WRITE, VisibleIncident, Depends(action_allowed)],
    response_model=StageOut,
    responses={409: {"description": "Not allowed in the incident's stage"}},
)
async def act(
    incident_id: int,
    body: ActionIn,
    principal: CurrentPrincipal,
    incidents: IncidentsDep,
    place: Annotated[dict[str, Any], Depends(visible_incident)],
) -> StageOut | JSONResponse:
    """Workflow actions: dispatch, accept, feedback, verify, reject, evaluate, false_alarm,
    cancel, reopen, acknowledge, comment, attach. An action the stage does not allow is
    refused with 409 and the reason. ``acknowledge`` takes the incident (确认接警: its
    escalation stops); a repeat records nothing and answers ``duplicate``."""
    if body.action not in USER_ACTIONS:
        raise invalid("action", f"{body.action.value} is recorded by the system only")
    _check_assignees(incidents.grid, body.assignees, place)
    step = ActionInput(body.action, principal.actor, principal.role, body.note,
                       tuple(body.assignees), body.score, tuple(body.attachments))  # fmt: skip
    try:
        acted = await incidents.service.apply(incident_id, step)
    except IncidentNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id}") from None
    except IllegalTransition as exc:
        return _not_now(exc)
    return _stage_out(incident_id, acted)


def _check_assignees(grid: GridDirectory, assignees: list[str], place: dict[str, Any]) -> None:
    """422 naming the assignees who are not grid people in the incident's scope."""
    wrong = unassignable(
        grid, assignees, cell=place["cell"], site=place["site"], household=place["household"]
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


def _not_now(exc: IllegalTransition) -> JSONResponse:
    """409: the stage does not allow the action; the reason and what it allows."""
    return JSONResponse(
        {
            "detail": exc.reason,
            "stage": exc.stage.value,
            "allowed": [a.value for a in allowed(exc.stage)],
        },
        status_code=status.HTTP_409_CONFLICT,
    )


def _stage_out(incident_id: int, acted: Acted) -> StageOut:
    ack = acted.acknowledgement
    return StageOut(
        id=incident_id,
        stage=acted.stage,
        allowed=allowed(acted.stage, acknowledged=acted.acknowledged),
        acknowledgement=None
        if ack is None
        else AcknowledgementOut(outcome=ack.outcome, acked_at=ack.acked_at, acked_by=ack.acked_by),
    )


@router.post(
    "/{incident_id}/attachments",
    status_code=status.HTTP_201_CREATED,
    dependencies=[*WRITE, VisibleIncident],
    openapi_extra={"requestBody": {"content": {t: {} for t in att.TYPES}, "required": True}},
)
async def upload(
    incident_id: int,
    request: Request,
    principal: CurrentPrincipal,
    incidents: IncidentsDep,
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
        row = await incidents.service.attach(
            incident_id,
            data,
            filename=filename,
            actor=principal.actor,
            role=principal.role,
            note=note,
            data_dir=incidents.data_dir,
        )
    except IncidentNotFound:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id}") from None
    except att.BadAttachment as exc:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, str(exc)) from None
    return {k: v for k, v in row.items() if k != "uploaded_at"} | {
        "uploaded_at": row["uploaded_at"].isoformat()
    }


@router.get("/{incident_id}/attachments/{attachment_id}", dependencies=[*READ, VisibleIncident])
async def download(
    incident_id: int, attachment_id: str, db: DatabaseDep, incidents: IncidentsDep
) -> FileResponse:
    row = await db.run(get_attachment, incident_id, attachment_id)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such attachment")
    path = att.path_for(incidents.data_dir, incident_id, row["id"], row["content_type"])
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
    dependencies=[*HAZARDS, IN_HOUSEHOLD, Depends(report_rate)],
    response_model=Created,
)
async def hazard(body: HazardIn, principal: CurrentPrincipal, incidents: IncidentsDep) -> Created:
    """随手报: a resident reports a hazard; the cell's grid worker is sent to verify.
    Add photos with POST /api/incidents/{id}/attachments."""
    short = body.text.strip().splitlines()[0][:40]
    new_id = await incidents.service.report(
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
