"""Live events: Server-Sent Events (``/api/events/stream``) and a WebSocket twin
(``/api/events/ws``). Each viewer gets its own bounded bus subscription, dropped on
disconnect. Events are sent as soon as they are validated, before they are stored, so a live
event may carry ``seq: null``."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter, Depends, WebSocket
from sse_starlette import EventSourceResponse, ServerSentEvent

from gateway.api.deps import BusDep, CurrentPrincipal, LiveFilterDep, Permission, require
from gateway.api.filters import EventFilter
from gateway.api.live import LiveItem, Missed, Subscribed, live_events
from gateway.auth.masking import mask_event
from gateway.auth.principal import Principal
from gateway.bus import EventBus

HEARTBEAT_S = 15  # comment line that keeps proxies from closing an idle stream
RETRY_MS = 3000  # reconnection delay suggested to EventSource clients
SEND_TIMEOUT_S = 30  # a viewer that does not read for this long is disconnected

router = APIRouter(
    prefix="/events", tags=["live"], dependencies=[Depends(require(Permission.EVENTS_READ))]
)

_SSE_DOC = """Server-Sent Events. The stream opens with a ``: subscribed`` comment; each event
is an unnamed message whose data is an EventPublic JSON object; ``event: missed`` carries
``{"count": n}`` when this viewer fell behind and lost events; a ``: ping`` comment is sent
every 15 s. Filters: site, device_id, kind, type (as on /api/events); like /api/events, only
the caller's sites, and plates/raw payloads masked without pii:read."""


def _sse_item(item: LiveItem) -> ServerSentEvent:
    if isinstance(item, Subscribed):
        return ServerSentEvent(comment="subscribed", retry=RETRY_MS)
    if isinstance(item, Missed):
        return ServerSentEvent(json.dumps({"count": item.count}), event="missed")
    return ServerSentEvent(item.model_dump_json())


async def _masked(
    bus: EventBus, flt: EventFilter, channel: str, principal: Principal
) -> AsyncGenerator[LiveItem, None]:
    """The viewer's live events, masked for the principal exactly as ``/api/events`` is
    (the site scope is already in ``flt``: ``live_filter`` narrows it)."""
    stream = live_events(bus, flt, channel)
    try:
        async for item in stream:
            yield item if isinstance(item, Subscribed | Missed) else mask_event(item, principal)
    finally:
        await stream.aclose()


async def _sse(
    bus: EventBus, flt: EventFilter, principal: Principal
) -> AsyncIterator[ServerSentEvent]:
    stream = _masked(bus, flt, "sse", principal)
    try:
        async for item in stream:
            yield _sse_item(item)
    finally:
        await stream.aclose()


@router.get(
    "/stream",
    response_class=EventSourceResponse,
    description=_SSE_DOC,
    responses={200: {"content": {"text/event-stream": {}}, "description": "Event stream"}},
)
async def stream_events(
    bus: BusDep, flt: LiveFilterDep, principal: CurrentPrincipal
) -> EventSourceResponse:
    return EventSourceResponse(
        _sse(bus, flt, principal),
        ping=HEARTBEAT_S,
        send_timeout=SEND_TIMEOUT_S,
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _ws_message(item: LiveItem) -> dict[str, Any]:
    if isinstance(item, Subscribed):
        return {"type": "subscribed"}
    if isinstance(item, Missed):
        return {"type": "missed", "count": item.count}
    return {"type": "event", "event": item.model_dump(mode="json")}


@router.websocket("/ws")
async def events_websocket(
    websocket: WebSocket, bus: BusDep, flt: LiveFilterDep, principal: CurrentPrincipal
) -> None:
    """WebSocket twin of /api/events/stream. JSON text messages: ``{"type": "subscribed"}``
    first, then ``{"type": "event", "event": {...}}`` and ``{"type": "missed", "count": n}``.
    Messages from the client are ignored."""
    await websocket.accept()
    async with anyio.create_task_group() as tg:

        async def until_disconnect() -> None:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
            tg.cancel_scope.cancel()

        tg.start_soon(until_disconnect)
        stream = _masked(bus, flt, "ws", principal)
        try:
            async for item in stream:
                with anyio.fail_after(SEND_TIMEOUT_S):
                    await websocket.send_json(_ws_message(item))
        finally:
            await stream.aclose()
            tg.cancel_scope.cancel()
