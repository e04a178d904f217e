"""``/VIID``: the GA/T 1400 HTTP surface. Small routes; the work is in ``service.py``.

Device endpoints: not behind the API's sessions and tokens (a device has none), but behind
their own check (digest registration, then ``User-Identify`` from the registered address).
Not in the OpenAPI schema: their contract is the standard's (docs/receivers-gat1400.md).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

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


def gat1400_router(service: Gat1400Service) -> APIRouter:
    router = APIRouter(
        prefix="/VIID", include_in_schema=False, dependencies=[Depends(mark_device_traffic)]
    )
    max_body = int(service.config.max_body_mb * 1024 * 1024)

    async def with_body(
        request: Request, limit: int, handle: Callable[[Call, bytes], Awaitable[Answer] | Answer]
    ) -> Response:
        call = call_of(request)
        try:
            body = await read_bounded(request, limit)
        except Refused as refusal:
            return respond(service.refused(call, refusal, b"", call.user_identify))
        answer = handle(call, body)
        return respond(answer if isinstance(answer, Answer) else await answer)

    @router.post("/System/Register")
    async def register(request: Request) -> Response:
        return await with_body(request, SYSTEM_BODY_LIMIT, service.register)

    @router.post("/System/Keepalive")
    async def keepalive(request: Request) -> Response:
        return await with_body(request, SYSTEM_BODY_LIMIT, service.keepalive)

    @router.post("/System/UnRegister")
    async def unregister(request: Request) -> Response:
        return await with_body(request, SYSTEM_BODY_LIMIT, service.unregister)

    @router.get("/System/Time")
    async def system_time() -> Response:
        return respond(service.time())

    def records_route(kind: p.ObjectKind) -> Callable[[Request], Awaitable[Response]]:
        async def post_records(request: Request) -> Response:
            return await with_body(
                request, max_body, lambda call, body: service.records(kind, call, body)
            )

        return post_records

    for kind in p.KINDS.values():
        router.add_api_route(f"/{kind.path}", records_route(kind), methods=["POST"])

    @router.api_route("/{rest:path}", methods=["GET", "POST", "PUT", "DELETE"])
    async def unsupported(request: Request) -> Response:
        answer = service.answer(
            call_of(request), 404, p.StatusCode.INVALID_OPERATION, detail="not supported here"
        )
        return respond(answer)

    return router
