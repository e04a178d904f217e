"""Read a request body without ever holding more than the limit."""

from __future__ import annotations

from starlette.requests import Request

from gateway.ingest.reasons import Reason
from gateway.receivers.httppush.errors import Refused


async def read_bounded(request: Request, limit: int) -> bytes:
    """The whole body, or :class:`Refused` (413) as soon as it passes ``limit`` bytes: a
    declared ``Content-Length`` over the limit is refused before anything is read."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise Refused(400, Reason.MALFORMED_BODY, "Content-Length is not a number") from None
        if size > limit:
            raise Refused(413, Reason.OVERSIZE, f"{size} bytes > limit {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Refused(413, Reason.OVERSIZE, f"more than {limit} bytes")
    return bytes(body)


async def read_head(request: Request, limit: int) -> bytes:
    """At most the first ``limit`` bytes of the body (what a refused push keeps in the
    quarantine); the rest is not read."""
    head = bytearray()
    async for chunk in request.stream():
        head += chunk[: limit - len(head)]
        if len(head) >= limit:
            break
    return bytes(head)
