"""ASGI middleware: every state-changing HTTP request (POST, PUT, PATCH, DELETE) becomes one
audit row after it is answered: who (the principal the auth dependency resolved), role,
client address, method and route, status, the request body as *before*-less intent and a
small JSON answer as *after*. Secrets and personal identifiers in bodies are redacted.

Routes that record richer rows themselves (login, account changes with before/after) are
listed in ``SELF_AUDITED`` and skipped here. A route whose answer does not show what it
removed sets ``request.state.audit_before``, recorded as the row's *before*. Reads that reveal personal data (a phone number
in clear) are recorded by their route with ``record_reveal``.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.audit.chain import AuditEntry, AuditLog
from gateway.ids import storable

log = logging.getLogger(__name__)

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SELF_AUDITED = frozenset({"/api/auth/login"})
# ``request.state.<AUDIT_BEFORE>``: what a route removed or replaced, recorded as the row's
# *before* (for answers that carry no body, like a 204).
AUDIT_BEFORE = "audit_before"
# ``request.state.<UNAUDITED>``: set by device endpoints (gateway/receivers), whose requests
# are devices' pushes at device rates, quarantined when refused rather than audited.
UNAUDITED = "unaudited"
MAX_CAPTURE = 8 * 1024
_SECRET_KEYS = re.compile(
    r"pass(word)?|secret|token|phone|mobile|id_?(number|card)|card|sdp|plate", re.I
)


def redact(value: Any, depth: int = 0) -> Any:
    """Replace values of secret or personal keys with ``"***"`` (recursively, bounded)."""
    if depth > 8:
        return "…"
    if isinstance(value, dict):
        # A validation error about a secret field repeats the value as "input".
        loc = value.get("loc")
        secret_input = isinstance(loc, list) and any(_SECRET_KEYS.search(str(p)) for p in loc)
        return {
            str(k): (
                "***"
                if _SECRET_KEYS.search(str(k)) or (secret_input and k == "input")
                else redact(v, depth + 1)
            )
            for k, v in list(value.items())[:100]
        }
    if isinstance(value, list):
        return [redact(v, depth + 1) for v in value[:100]]
    if isinstance(value, str):
        value = storable(value)  # a refused NUL must not break the row that records it
        return value[:500] + "…" if len(value) > 500 else value
    return value


def _json_or_size(body: bytes, content_type: str, truncated: bool) -> Any:
    if not body:
        return None
    if "json" in content_type and not truncated:
        try:
            return redact(json.loads(body))
        except ValueError:
            pass
    return {"bytes": len(body), "truncated": truncated, "content_type": content_type[:100]}


class AuditMiddleware:
    def __init__(self, app: ASGIApp, audit: AuditLog) -> None:
        self.app = app
        self.audit = audit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in UNSAFE:
            await self.app(scope, receive, send)
            return
        if scope["path"] in SELF_AUDITED:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        request_body = bytearray()
        request_truncated = False
        response_body = bytearray()
        response_truncated = False
        response_type = ""
        status: int | None = None

        async def tee_receive() -> Message:
            nonlocal request_truncated
            message = await receive()
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                if len(request_body) + len(chunk) <= MAX_CAPTURE:
                    request_body.extend(chunk)
                else:
                    request_truncated = True
            return message

        async def tee_send(message: Message) -> None:
            nonlocal status, response_type, response_truncated
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for k, v in message.get("headers", []):
                    if k.lower() == b"content-type":
                        response_type = v.decode("latin-1")
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                if len(response_body) + len(chunk) <= MAX_CAPTURE:
                    response_body.extend(chunk)
                else:
                    response_truncated = True
            await send(message)

        try:
            await self.app(scope, tee_receive, tee_send)
        finally:
            await self._record(
                scope,
                status,
                _json_or_size(
                    bytes(request_body), _header(scope, b"content-type"), request_truncated
                ),
                _json_or_size(bytes(response_body), response_type, response_truncated),
            )

    async def _record(self, scope: Scope, status: int | None, request: Any, answer: Any) -> None:
        if scope.get("state", {}).get(UNAUDITED):
            return  # device traffic (GA/T 1400, ISAPI push), not a person's action
        principal = scope.get("state", {}).get("principal")
        # A route whose answer does not show what it changed (a 204) may say it here.
        before = scope.get("state", {}).get(AUDIT_BEFORE)
        route = scope.get("route")
        template = getattr(route, "path", None) or scope["path"]
        client = scope.get("client")
        entry = AuditEntry(
            actor=getattr(principal, "actor", None) or "anonymous",
            role=getattr(principal, "role", "") or "",
            source_ip=client[0] if client else "",
            action=storable(f"{scope['method']} {template}"),
            target=storable(scope["path"]),
            status=status,
            before=None if before is None else redact(before),
            after={"request": request, "response": answer},
        )
        try:
            await anyio.to_thread.run_sync(self.audit.append, entry)
        except Exception:  # the answer is already sent; never hide the failure
            log.exception("audit: could not record %s %s", scope["method"], template)


def _header(scope: Scope, name: bytes) -> str:
    for k, v in scope.get("headers", []):
        if k.lower() == name:
            return str(v.decode("latin-1"))
    return ""


async def record_reveal(request: Request, what: dict[str, Any]) -> None:
    """Record a read that reveals personal data, like a change: who, role, from where, the
    route and path, and ``what`` (never the value revealed). Raises when the row cannot be
    written, so nothing is revealed without its record. Without an accounts service (tests
    of other parts) there is no audit log and nothing is recorded."""
    audit: AuditLog | None = getattr(getattr(request.app.state, "auth", None), "audit", None)
    if audit is None:
        return
    principal = getattr(request.state, "principal", None)
    route = request.scope.get("route")
    template = getattr(route, "path", None) or request.url.path
    entry = AuditEntry(
        actor=getattr(principal, "actor", None) or "anonymous",
        role=getattr(principal, "role", "") or "",
        source_ip=request.client.host if request.client else "",
        action=f"{request.method} {template}",
        target=request.url.path,
        status=200,
        before=None,
        after={"revealed": redact(what)},
    )
    await anyio.to_thread.run_sync(audit.append, entry)
