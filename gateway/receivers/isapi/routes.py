"""``/isapi/events/<device id>``: where Hikvision devices push (their ``httpHosts`` URL).

A device endpoint: not behind the API's sessions and tokens, but behind its own check
(``service.IsapiService.check``). Not in the OpenAPI schema (docs/receivers-isapi.md).
The running service is ``app.state.isapi``.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import Response

from gateway.api.deps import app_part
from gateway.receivers.httppush.body import read_bounded, read_head
from gateway.receivers.httppush.errors import Refused
from gateway.receivers.isapi.service import Answer, IsapiService, Push

PREFIX = "/isapi/events"


def mark_device_traffic(request: Request) -> None:
    """Device pushes are not people's actions: left out of the audit log
    (gateway.audit.middleware reads ``unaudited``); they are logged and quarantined instead."""
    request.state.unaudited = True


def respond(answer: Answer) -> Response:
    return Response(
        json.dumps(answer.body, ensure_ascii=False).encode(),
        status_code=answer.status,
        media_type="application/json",
        headers=answer.headers,
    )


IsapiDep = Annotated[IsapiService, Depends(app_part("isapi"))]
router = APIRouter(
    prefix=PREFIX, include_in_schema=False, dependencies=[Depends(mark_device_traffic)]
)


@router.post("/{device_id}")
async def push_event(
    request: Request,
    service: IsapiDep,
    device_id: str = Path(..., min_length=1, max_length=128),
) -> Response:
    push = Push(
        device_id=device_id,
        method=request.method,
        path=request.url.path,
        address=request.client.host if request.client else "",
        content_type=request.headers.get("content-type", ""),
        authorization=request.headers.get("authorization"),
    )
    checked = service.check(push)
    if isinstance(checked, Answer):
        return respond(checked)
    if isinstance(checked, Refused):
        # Enough of the body to keep in the quarantine and to see whether it is a panic.
        quarantine_head = service.intake.ingest.quarantine_raw_bytes
        head = await read_head(request, max(quarantine_head, 64 * 1024))
        return respond(service.refuse(push, checked, head))
    try:
        body = await read_bounded(request, service.max_body)
    except Refused as refusal:
        return respond(service.refuse(push, refusal, b""))
    return respond(await service.take(push, body))
