"""``/api/notifications``: acknowledging a notification, and the console's live push (SSE
and a WebSocket twin), scoped to the caller."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, HTTPException, WebSocket, status
from fastapi import Path as PathParam
from sse_starlette import EventSourceResponse, ServerSentEvent

from gateway.api.deps import CurrentPrincipal
from gateway.auth.guards import AcknowledgeableNotification, LivePush, LivePushDep
from gateway.incidents.routes.deps import READ, WRITE, IncidentsDep
from gateway.incidents.routes.models import AckIn
from gateway.incidents.service import AckOutcome
from gateway.notify.console import NotificationHub

router = APIRouter(prefix="/api/notifications", tags=["notifications"])


@router.post("/{notification_id}/ack", dependencies=[*WRITE, AcknowledgeableNotification])
async def ack(
    notification_id: Annotated[int, PathParam(ge=1, le=2**62)],
    body: AckIn,
    principal: CurrentPrincipal,
    incidents: IncidentsDep,
) -> dict[str, Any]:
    """Acknowledge a notification (for its recipient: every channel it was sent on).
    ``outcome``: recorded, or duplicate (acknowledged before: nothing recorded);
    ``took_incident``: it was the incident's acknowledgement (its escalation stops)."""
    result = await incidents.service.acknowledge_notification(notification_id, principal.actor)
    if result.outcome is AckOutcome.NOT_FOUND:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no notification {notification_id}")
    return {
        "id": notification_id,
        "acknowledged": True,
        "outcome": result.outcome.value,
        "incident_id": result.incident_id,
        "took_incident": result.took_incident,
    }


async def _items(hub: NotificationHub, push: LivePush) -> AsyncIterator[dict[str, Any]]:
    stream = hub.watch(push.admits)
    try:
        async for item in stream:
            yield item
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


@router.get("/stream", dependencies=READ, response_class=EventSourceResponse)
async def stream(push: LivePushDep, incidents: IncidentsDep) -> EventSourceResponse:
    """Live console push (SSE): notifications for the console channel, delivery updates
    and incident changes — only about incidents in the caller's scope (or notifications
    addressed to the caller). ``recipient`` (e.g. ``police-desk/beat-1``) narrows it."""

    async def events() -> AsyncIterator[ServerSentEvent]:
        async for item in _items(incidents.hub, push):
            if item.get("type") == "subscribed":
                yield ServerSentEvent(comment="subscribed")
            else:
                yield ServerSentEvent(
                    json.dumps(item, ensure_ascii=False, default=str),
                    event=str(item.get("type")),
                )

    return EventSourceResponse(events(), ping=15, headers={"Cache-Control": "no-cache"})


@router.websocket("/ws", dependencies=READ)
async def ws(websocket: WebSocket, push: LivePushDep, incidents: IncidentsDep) -> None:
    """WebSocket twin of /api/notifications/stream (JSON text messages), scoped alike."""
    await websocket.accept()
    async with anyio.create_task_group() as tg:

        async def until_disconnect() -> None:
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
            tg.cancel_scope.cancel()

        tg.start_soon(until_disconnect)
        async for item in _items(incidents.hub, push):
            with anyio.fail_after(30):
                await websocket.send_text(json.dumps(item, ensure_ascii=False, default=str))
        tg.cancel_scope.cancel()
