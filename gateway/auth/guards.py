"""Object-level access checks, as FastAPI dependencies, all in one place.

Routes add them next to ``require(permission)``: the permission says *what*, these say
*which object*. An object outside the caller's scope answers 404, exactly like a missing
one, so ids of other cells' incidents or other compounds' devices cannot be probed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Path, Query, Request, status
from sqlalchemy import ColumnElement, Engine, false, or_, select

from gateway.api.deps import CurrentPrincipal, DatabaseDep
from gateway.auth.principal import Principal, Scope
from gateway.auth.ratelimit import rate_limited
from gateway.auth.roles import RESIDENT_ACTIONS, AccountRole
from gateway.auth.scope import cells_of
from gateway.grid.directory import GridDirectory
from gateway.incidents.tables import incidents
from gateway.notify.base import IncidentPlace
from gateway.notify.tables import notifications
from gateway.storage.tables import devices, events


def _not_found(what: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"未找到 / {what} not found")


def _forbidden(message: str) -> HTTPException:
    return HTTPException(status.HTTP_403_FORBIDDEN, message)


# -- queries (blocking) -----------------------------------------------------------------


def _device_site(engine: Engine, device_id: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(devices.c.site).where(devices.c.id == device_id)).scalar()


def _event_site(engine: Engine, event_id: str) -> str | None:
    with engine.connect() as conn:
        return conn.execute(select(events.c.site).where(events.c.event_id == event_id)).scalar()


def _camera_sites(engine: Engine, camera_id: str) -> set[str]:
    stmt = select(devices.c.site).where(
        or_(devices.c.id == camera_id, devices.c.camera == camera_id)
    )
    with engine.connect() as conn:
        return {str(s) for s in conn.execute(stmt).scalars()}


def _incident_place(engine: Engine, incident_id: int) -> dict[str, Any] | None:
    c = incidents.c
    stmt = select(c.id, c.cell, c.site, c.household, c.reporter).where(c.id == incident_id)
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    return None if row is None else dict(row._mapping)


# -- devices, events, cameras -----------------------------------------------------------


async def visible_device(device_id: str, principal: CurrentPrincipal, db: DatabaseDep) -> None:
    if principal.scope.everything:
        return
    if not principal.scope.sees_site(await db.run(_device_site, device_id)):
        raise _not_found(f"device {device_id!r}")


async def visible_event(event_id: str, principal: CurrentPrincipal, db: DatabaseDep) -> None:
    if principal.scope.everything:
        return
    if not principal.scope.sees_site(await db.run(_event_site, event_id)):
        raise _not_found(f"event {event_id!r}")


async def camera_visible(principal: Principal, db: DatabaseDep, camera_id: str) -> bool:
    """Whether the camera's device (or a device bound to it) is in a covered site."""
    if principal.scope.everything:
        return True
    sites = await db.run(_camera_sites, camera_id)
    return any(principal.scope.sees_site(s) for s in sites)


async def visible_camera(
    camera_id: Annotated[str, Path(min_length=1, max_length=128)],
    principal: CurrentPrincipal,
    db: DatabaseDep,
) -> None:
    """A camera is visible when its device (or a device bound to it) is in a covered site."""
    if not await camera_visible(principal, db, camera_id):
        raise _not_found("camera")


# -- grid listings (people, households) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class GridListing:
    """Which grid people and households a listing may show: a household when the scope
    covers it (a resident: their own), a person when one of the cells they are assigned to
    (directly or through a beat, micro-grids included) is in the scope's cells."""

    scope: Scope

    @property
    def household_ids(self) -> frozenset[str] | None:
        """None: every household; else only these."""
        return None if self.scope.everything else self.scope.households

    def sees_person(self, grid: GridDirectory, assignments: Mapping[str, Any] | None) -> bool:
        if self.scope.everything:
            return True
        a = assignments or {}
        cells = cells_of(grid, cells=list(a.get("cells") or ()), beats=list(a.get("beats") or ()))
        return not cells.isdisjoint(self.scope.cells)


def grid_listing(principal: CurrentPrincipal) -> GridListing:
    return GridListing(principal.scope)


GridListingDep = Annotated[GridListing, Depends(grid_listing)]


# -- incidents --------------------------------------------------------------------------


def incident_restriction(principal: Principal) -> ColumnElement[bool] | None:
    """The WHERE clause limiting an incident listing to the principal's scope (None: all)."""
    scope = principal.scope
    if scope.everything:
        return None
    c = incidents.c
    terms: list[ColumnElement[bool]] = []
    if scope.cells:
        terms.append(c.cell.in_(sorted(scope.cells)))
    if scope.incident_sites:
        terms.append(c.site.in_(sorted(scope.incident_sites)))
    if scope.reporter is not None:
        terms.append(c.reporter == scope.reporter)
    return or_(*terms) if terms else false()


def incident_scope(principal: CurrentPrincipal) -> ColumnElement[bool] | None:
    return incident_restriction(principal)


IncidentScopeDep = Annotated[ColumnElement[bool] | None, Depends(incident_scope)]


IncidentId = Annotated[int, Path(ge=1, le=2**62, description="Incident id")]


async def visible_incident(
    incident_id: IncidentId, principal: CurrentPrincipal, db: DatabaseDep
) -> dict[str, Any]:
    found = await db.run(_incident_place, incident_id)
    if found is None or not principal.scope.sees_incident(
        found["cell"], found["site"], found["reporter"]
    ):
        raise _not_found(f"incident {incident_id}")
    return found


def _notification_place(engine: Engine, notification_id: int) -> dict[str, Any] | None:
    c = incidents.c
    stmt = (
        select(c.cell, c.site, c.reporter)
        .join(notifications, notifications.c.incident_id == c.id)
        .where(notifications.c.id == notification_id)
    )
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    return None if row is None else dict(row._mapping)


async def acknowledgeable_notification(
    notification_id: Annotated[int, Path(ge=1, le=2**62, description="Notification id")],
    principal: CurrentPrincipal,
    db: DatabaseDep,
) -> None:
    """A notification may be acknowledged by staff who see its incident; residents are told,
    they do not acknowledge (their report's notifications are addressed to staff)."""
    if principal.role == AccountRole.RESIDENT.value:
        raise _forbidden("居民无需确认通知 / residents do not acknowledge notifications")
    found = await db.run(_notification_place, notification_id)
    if found is None or not principal.scope.sees_incident(
        found["cell"], found["site"], found["reporter"]
    ):
        raise _not_found(f"notification {notification_id}")


async def _json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object (FastAPI has read and cached the body already)."""
    try:
        data = json.loads(await request.body() or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


async def action_allowed(request: Request, principal: CurrentPrincipal) -> None:
    """Residents act on their own reports only with comment, attach, cancel, evaluate."""
    if principal.role != AccountRole.RESIDENT.value:
        return
    action = (await _json_body(request)).get("action")
    if isinstance(action, str) and action not in RESIDENT_ACTIONS:
        raise _forbidden(f"居民不能执行此操作 / residents may not {action}")


async def household_allowed(request: Request, principal: CurrentPrincipal) -> None:
    """A report or alarm names a household only within the caller's scope (a resident:
    their own); a scoped staff member's ``site``/``cell`` must be theirs too."""
    body = await _json_body(request)
    scope = principal.scope
    household = body.get("household")
    if isinstance(household, str) and not scope.owns_household(household):
        raise _forbidden("只能为本户报警或上报 / only for your own household")
    if scope.everything or principal.role == AccountRole.RESIDENT.value:
        return
    cell, site = body.get("cell"), body.get("site")
    if isinstance(cell, str) and cell not in scope.cells:
        raise _forbidden("不在您的网格 / cell outside your grid")
    if isinstance(site, str) and site not in scope.sites:
        raise _forbidden("不在您的辖区 / site outside your area")


def own_household(principal: Principal) -> str | None:
    """A resident's household (their scope holds exactly one)."""
    if principal.role == AccountRole.RESIDENT.value and len(principal.scope.households) == 1:
        return next(iter(principal.scope.households))
    return None


# -- rate limits ------------------------------------------------------------------------


def _rates(request: Request) -> Any:
    auth = getattr(request.app.state, "auth", None)
    return getattr(auth, "config", None)


def _principal_key(request: Request) -> str:
    principal = getattr(request.state, "principal", None)
    if principal is not None:
        return f"user:{principal.user_id or principal.name}"
    client = request.client
    return f"ip:{client.host if client else '?'}"


alarm_rate = rate_limited(
    "alarm", lambda r: getattr(_rates(r), "alarm_rate", "10/minute"), _principal_key
)
report_rate = rate_limited(
    "report", lambda r: getattr(_rates(r), "report_rate", "30/hour"), _principal_key
)

VisibleIncident = Depends(visible_incident)
AcknowledgeableNotification = Depends(acknowledgeable_notification)


# -- live console push ------------------------------------------------------------------


ROLE_ADDRESS = "role/"  # an item for every viewer of one account role: role/administrator


@dataclass(frozen=True, slots=True)
class LivePush:
    """Which items of the live console push (``NotificationHub``) a viewer receives.

    An item is about one incident; it is delivered when the incident is in the viewer's
    scope (``Scope.sees_incident`` on its cell, site, reporter) or when it is addressed to the
    viewer themselves (``person/<their grid person id>``, e.g. a dispatch to someone outside
    their cells) or to the viewer's account role (``role/administrator``: security alerts,
    which no other role receives). Items about no known incident reach unrestricted viewers only.
    ``recipients`` (the ``recipient`` query parameter) only narrows: items addressed to
    someone else, and updates addressed to no one, are then left out.
    """

    scope: Scope
    addresses: frozenset[str] = frozenset()
    recipients: frozenset[str] = frozenset()

    def admits(self, place: IncidentPlace | None, recipient: str | None) -> bool:
        if self.recipients and recipient not in self.recipients:
            return False
        if recipient is not None and recipient in self.addresses:
            return True
        if recipient is not None and recipient.startswith(ROLE_ADDRESS):
            return False  # for one role (the administrators' security alerts) only
        if place is None:
            return self.scope.everything
        return self.scope.sees_incident(place.cell, place.site, place.reporter)


def live_push(
    principal: CurrentPrincipal,
    recipient: Annotated[
        list[str] | None, Query(description="kind/id, e.g. police-desk/beat-1; repeatable")
    ] = None,
) -> LivePush:
    wanted = frozenset(p.strip() for v in recipient or () for p in v.split(",") if p.strip())
    addresses = frozenset(
        {f"{ROLE_ADDRESS}{principal.role}"}
        | ({f"person/{principal.person_id}"} if principal.person_id else set())
    )
    return LivePush(principal.scope, addresses, wanted)


LivePushDep = Annotated[LivePush, Depends(live_push)]
