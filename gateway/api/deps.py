"""Dependencies for the routes, as ``Annotated`` aliases so route signatures stay short.

Authentication is ``get_current_principal`` / ``CurrentPrincipal``: a bearer token (API
token or session id) or the console's session cookie, looked up by the ``AuthService`` in
``app.state.auth``; no credential, an unknown one, or no accounts service at all → 401.
Routes declare the permission they need with ``require(...)``; the listing filters below
are narrowed to the principal's scope here, in one place, and object-level checks are the
dependencies of ``gateway.auth.guards``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Protocol, TypeVar, cast

import anyio
import anyio.to_thread
from fastapi import Depends, HTTPException, Query, WebSocketException, status
from fastapi.exceptions import RequestValidationError
from sqlalchemy import Engine
from starlette.requests import HTTPConnection

from gateway.api import queries
from gateway.api.cursor import InvalidCursor, decode_int_cursor, decode_str_cursor
from gateway.api.filters import DeviceFilter, EventFilter, PageRequest, QuarantineFilter
from gateway.api.runtime import Runtime
from gateway.auth.principal import ALL, ANONYMOUS, Permission, Principal, Scope
from gateway.bus import EventBus
from gateway.events import DeviceKind, EventType
from gateway.health import DatabaseHealth
from gateway.ingest.reasons import Reason

R = TypeVar("R")
E = TypeVar("E", bound=StrEnum)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_FILTER_VALUES = 100
HEALTH_DB_TIMEOUT_S = 3.0

# -- runtime and database -------------------------------------------------------------


def get_runtime(conn: HTTPConnection) -> Runtime:
    return cast(Runtime, conn.app.state.runtime)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


@dataclass(frozen=True, slots=True)
class Database:
    """Runs blocking query functions in a worker thread."""

    engine: Engine

    async def run(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """``await db.run(queries.list_events, filters, page)``: ``fn(engine, *args)``."""
        call = functools.partial(fn, self.engine, *args, **kwargs)
        return await anyio.to_thread.run_sync(call)

    async def check(self, timeout_s: float = HEALTH_DB_TIMEOUT_S) -> DatabaseHealth:
        """``SELECT 1`` with a deadline; a hung database reports an error instead of hanging
        the health check (the worker thread is abandoned, not killed)."""
        call = functools.partial(queries.check_database, self.engine)
        with anyio.move_on_after(timeout_s):
            return await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
        return DatabaseHealth(ok=False, error=f"no answer within {timeout_s:g}s")


def get_database(runtime: RuntimeDep) -> Database:
    return Database(runtime.engine)


def get_bus(runtime: RuntimeDep) -> EventBus:
    return runtime.bus


DatabaseDep = Annotated[Database, Depends(get_database)]
BusDep = Annotated[EventBus, Depends(get_bus)]


def app_part(name: str) -> Callable[[HTTPConnection], Any]:
    """Dependency on a running part the app holds as ``app.state.<name>`` (set where the app
    is assembled: ``gateway.server.build_app``), so that routes are plain module-level
    functions: ``IncidentsDep = Annotated[IncidentsContext, Depends(app_part("incidents"))]``.
    An app without that part answers 503."""

    def get(conn: HTTPConnection) -> Any:
        part = getattr(conn.app.state, name, None)
        if part is None:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"no {name} in this app")
        return part

    get.__name__ = f"app_state_{name}"
    return get


# -- authentication -------------------------------------------------------------------

SESSION_COOKIE = "lianfang_session"
NO_SITE = "-none-"  # never a valid site id: an empty intersection matches nothing


class Authenticator(Protocol):
    def principal_for(self, credential: str) -> Principal | None: ...


def credential_of(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return conn.cookies.get(SESSION_COOKIE) or None


def _unauthenticated(conn: HTTPConnection) -> Exception:
    if conn.scope["type"] == "websocket":
        return WebSocketException(status.WS_1008_POLICY_VIOLATION, "authentication required")
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "需要登录 / authentication required",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def get_current_principal(conn: HTTPConnection) -> Principal:
    """Identify the caller (HTTP request or WebSocket): ``Authorization: Bearer <token>``
    or the session cookie. Anonymous callers get 401 (WebSocket: close 1008)."""
    auth: Authenticator | None = getattr(conn.app.state, "auth", None)
    credential = credential_of(conn)
    if auth is None or credential is None or len(credential) > 512:
        raise _unauthenticated(conn)
    principal = await anyio.to_thread.run_sync(auth.principal_for, credential)
    if principal is None:
        raise _unauthenticated(conn)
    conn.state.principal = principal  # for the audit middleware
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_current_principal)]


def require(permission: Permission) -> Callable[[Principal], Principal]:
    """Dependency factory: ``dependencies=[Depends(require(Permission.EVENTS_READ))]``."""

    def check(principal: CurrentPrincipal) -> Principal:
        if not principal.allows(permission):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"无权限 / needs permission {permission}"
            )
        return principal

    return check


def scoped_sites(principal: Principal, sites: tuple[str, ...]) -> tuple[str, ...]:
    """The ``site`` filter narrowed to the sites the principal covers."""
    if principal.scope.everything:
        return sites
    allowed = principal.scope.sites
    narrowed = tuple(s for s in sites if s in allowed) if sites else tuple(sorted(allowed))
    return narrowed or (NO_SITE,)


# -- query parameters -----------------------------------------------------------------


def invalid(param: str, message: str, value: object = None) -> RequestValidationError:
    """A 422 in FastAPI's own error shape, so clients parse one format."""
    return RequestValidationError(
        [{"type": "value_error", "loc": ("query", param), "msg": message, "input": value}]
    )


def _values(param: str, raw: list[str] | None, *, split: bool) -> tuple[str, ...]:
    if not raw:
        return ()
    parts = [p.strip() for v in raw for p in (v.split(",") if split else [v])]
    values = tuple(dict.fromkeys(p for p in parts if p))
    if len(values) > MAX_FILTER_VALUES:
        raise invalid(param, f"at most {MAX_FILTER_VALUES} values")
    return values


def _enum_values(param: str, raw: list[str] | None, enum: type[E]) -> tuple[E, ...]:
    result: list[E] = []
    for value in _values(param, raw, split=True):
        try:
            result.append(enum(value))
        except ValueError:
            allowed = ", ".join(m.value for m in enum)
            message = f"unknown {param} {value!r}; expected one of: {allowed}"
            raise invalid(param, message, value) from None
    return tuple(result)


def _aware(param: str, value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise invalid(
            param,
            "timestamp needs a timezone offset, e.g. 2026-05-01T08:00:00+08:00 or ...Z",
            value.isoformat(),
        )
    return value


def _time_range(
    since: datetime | None, until: datetime | None
) -> tuple[datetime | None, datetime | None]:
    since, until = _aware("since", since), _aware("until", until)
    if since is not None and until is not None and since >= until:
        raise invalid("until", "until must be later than since", until.isoformat())
    return since, until


_MULTI = "Repeat the parameter or separate values with commas."
Sites = Annotated[list[str] | None, Query(description="Site id; repeatable")]
DeviceIds = Annotated[list[str] | None, Query(description="Device id; repeatable")]
Kinds = Annotated[list[str] | None, Query(description=f"Device kind. {_MULTI}")]
Types = Annotated[list[str] | None, Query(description=f"Event type. {_MULTI}")]
Since = Annotated[
    datetime | None, Query(description="ISO 8601 with offset; inclusive (on occurred_at)")
]
Until = Annotated[
    datetime | None, Query(description="ISO 8601 with offset; exclusive (on occurred_at)")
]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Page size")]
Cursor = Annotated[
    str | None, Query(max_length=512, description="next_cursor of the previous page")
]


def event_filter(
    principal: CurrentPrincipal,
    site: Sites = None,
    device_id: DeviceIds = None,
    kind: Kinds = None,
    type: Types = None,
    since: Since = None,
    until: Until = None,
) -> EventFilter:
    since, until = _time_range(since, until)
    return EventFilter(
        sites=scoped_sites(principal, _values("site", site, split=False)),
        device_ids=_values("device_id", device_id, split=False),
        kinds=_enum_values("kind", kind, DeviceKind),
        types=_enum_values("type", type, EventType),
        since=since,
        until=until,
    )


def live_filter(
    conn: HTTPConnection,
    principal: CurrentPrincipal,
    site: Sites = None,
    device_id: DeviceIds = None,
    kind: Kinds = None,
    type: Types = None,
) -> EventFilter:
    try:
        return event_filter(principal, site, device_id, kind, type)
    except RequestValidationError as exc:
        if conn.scope["type"] != "websocket":
            raise
        reason = "; ".join(str(e["msg"]) for e in exc.errors())
        raise WebSocketException(status.WS_1008_POLICY_VIOLATION, reason[:120]) from None


def since_only(
    since: Annotated[datetime | None, Query(description="ISO 8601 with offset; inclusive")] = None,
) -> datetime | None:
    return _aware("since", since)


def device_filter(
    principal: CurrentPrincipal,
    site: Sites = None,
    kind: Kinds = None,
    online: Annotated[bool | None, Query(description="Last reported online state")] = None,
) -> DeviceFilter:
    return DeviceFilter(
        sites=scoped_sites(principal, _values("site", site, split=False)),
        kinds=_enum_values("kind", kind, DeviceKind),
        online=online,
    )


def quarantine_filter(
    reason: Annotated[list[str] | None, Query(description=f"Reason. {_MULTI}")] = None,
    device_id: DeviceIds = None,
    since: Annotated[datetime | None, Query(description="On received_at; inclusive")] = None,
    until: Annotated[datetime | None, Query(description="On received_at; exclusive")] = None,
) -> QuarantineFilter:
    since, until = _time_range(since, until)
    return QuarantineFilter(
        reasons=_enum_values("reason", reason, Reason),
        device_ids=_values("device_id", device_id, split=False),
        since=since,
        until=until,
    )


def _int_page(listing: str) -> Callable[[int, str | None], PageRequest]:
    def page(limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> PageRequest:
        try:
            after = None if cursor is None else decode_int_cursor(cursor, listing)
        except InvalidCursor as exc:
            raise invalid("cursor", str(exc), cursor) from None
        return PageRequest(limit, after)

    return page


def device_page(limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None) -> PageRequest:
    try:
        after = None if cursor is None else decode_str_cursor(cursor, queries.DEVICES_LISTING)
    except InvalidCursor as exc:
        raise invalid("cursor", str(exc), cursor) from None
    return PageRequest(limit, after)


EventFilterDep = Annotated[EventFilter, Depends(event_filter)]
LiveFilterDep = Annotated[EventFilter, Depends(live_filter)]
DeviceFilterDep = Annotated[DeviceFilter, Depends(device_filter)]
QuarantineFilterDep = Annotated[QuarantineFilter, Depends(quarantine_filter)]
EventPageDep = Annotated[PageRequest, Depends(_int_page(queries.EVENTS_LISTING))]
QuarantinePageDep = Annotated[PageRequest, Depends(_int_page(queries.QUARANTINE_LISTING))]
DevicePageDep = Annotated[PageRequest, Depends(device_page)]
SinceDep = Annotated[datetime | None, Depends(since_only)]

__all__ = [
    "ALL",
    "ANONYMOUS",
    "SESSION_COOKIE",
    "CurrentPrincipal",
    "Database",
    "Permission",
    "Principal",
    "Scope",
    "get_current_principal",
    "require",
]
