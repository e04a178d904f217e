"""``/VIID``: the GA/T 1400 HTTP surface. Small routes; the work is in ``service.py``.

Device endpoints: not behind the API's sessions and tokens (a device has none), but behind
their own check (digest registration, then ``User-Identify`` from the registered address).
Not in the OpenAPI schema: their contract is the standard's (docs/receivers-gat1400.md).
The running service is ``app.state.gat1400``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from gateway.api.deps import app_part
from gateway.receivers.gat1400 import protocol as p
from gateway.receivers.gat1400.service import Answer, Call, Gat1400Service
from gateway.receivers.httppush.body import read_bounded
from gateway.receivers.httppush.errors import Refused

SYSTEM_BODY_LIMIT = 64 * 1024  # Register, Keepalive, UnRegister: a few hundred bytes


def mark_device_traffic(request: Request) -> None:
    """Device calls are not people's actions: the audit log (gateway.audit.middleware)
    leaves requests marked ``unaudited`` out; they are logged and quarantined instead."""
    request.state.unaudited = True


def respond(answer: Answer) -> Response:
    body = json.dumps(answer.body, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(
        body,
        status_code=answer.status,
        media_type=f"{p.MEDIA_TYPE};charset=UTF-8",
        headers=answer.headers,
    )


def call_of(request: Request) -> Call:
    return Call(
        method=request.method,
        path=request.url.path,
        address=request.client.host if request.client else "",
        authorization=request.headers.get("authorization"),
        user_identify=(request.headers.get(p.USER_IDENTIFY) or "").strip()[:128] or None,
    )


Gat1400Dep = Annotated[Gat1400Service, Depends(app_part("gat1400"))]
router = APIRouter(
    prefix="/VIID", include_in_schema=False, dependencies=[Depends(mark_device_traffic)]
)


async def with_body(
    service: Gat1400Service,
    request: Request,
    limit: int,
    handle: Callable[[Call, bytes], Awaitable[Answer] | Answer],
) -> Response:
    call = call_of(request)
    try:
        body = await read_bounded(request, limit)
    except Refused as refusal:
        return respond(service.refused(call, refusal, b"", call.user_identify))
    answer = handle(call, body)
    return respond(answer if isinstance(answer, Answer) else await answer)


@router.post("/System/Register")
async def register(request: Request, service: Gat1400Dep) -> Response:
    return await with_body(service, request, SYSTEM_BODY_LIMIT, service.register)


@router.post("/System/Keepalive")
async def keepalive(request: Request, service: Gat1400Dep) -> Response:
    return await with_body(service, request, SYSTEM_BODY_LIMIT, service.keepalive)


@router.post("/System/UnRegister")
async def unregister(request: Request, service: Gat1400Dep) -> Response:
    return await with_body(service, request, SYSTEM_BODY_LIMIT, service.unregister)


@router.get("/System/Time")
async def system_time(service: Gat1400Dep) -> Response:
    return respond(service.time())


def records_route(kind: p.ObjectKind) -> Callable[..., Awaitable[Response]]:
    """The POST route of one kind of record (vehicles, faces, persons, …)."""

    async def post_records(request: Request, service: Gat1400Dep) -> Response:
        limit = int(service.config.max_body_mb * 1024 * 1024)
        return await with_body(
            service, request, limit, lambda call, body: service.records(kind, call, body)
        )

    return post_records


for _kind in p.KINDS.values():
    router.add_api_route(f"/{_kind.path}", records_route(_kind), methods=["POST"])


@router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"])
async def unsupported(request: Request, service: Gat1400Dep) -> Response:
    answer = service.answer(
        call_of(request), 404, p.StatusCode.INVALID_OPERATION, detail="not supported here"
    )
    return respond(answer)
