"""Secure response headers for the API and the web console; CORS stays closed unless origins
are configured (then only those, with credentials); WebSocket handshakes only from this
server's own pages (or those origins)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


class SecureHeadersMiddleware:
    """Adds ``HEADERS`` and a restrictive CSP (unless the route set its own, as /docs does);
    ``Cache-Control: no-store`` on /api/auth and /api/users; HSTS over HTTPS."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in HEADERS.items():
                    headers.setdefault(key, value)
                headers.setdefault("content-security-policy", DEFAULT_CSP)
                if path.startswith(("/api/auth", "/api/users", "/api/audit")):
                    headers["cache-control"] = "no-store"
                if scope.get("scheme") == "https":
                    headers.setdefault("strict-transport-security", "max-age=31536000")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _origin_of(scope: Scope) -> tuple[str | None, str]:
    origin: str | None = None
    host = ""
    for key, value in scope.get("headers", []):
        if key == b"origin":
            origin = value.decode("latin-1")
        elif key == b"host":
            host = value.decode("latin-1")
    return origin, host


def same_origin(origin: str, host: str) -> bool:
    """Whether a browser's ``Origin`` names this server: the ``Host`` it asked for. The
    scheme is not compared: behind a TLS proxy the page is https and the hop to us is not."""
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc.lower() == host.lower()


class WebSocketOriginMiddleware:
    """Refuses a WebSocket handshake from another site's page (cross-site WebSocket
    hijacking: a browser sends the session cookie with it). A browser always sends
    ``Origin``; it must be this server's own or one of ``allowed_origins`` (the CORS list).
    Clients that send none (integrations, curl) are not browsers and pass on to the usual
    authentication. A refused handshake closes with 1008 (an HTTP 403 to the client)."""

    def __init__(self, app: ASGIApp, allowed_origins: Sequence[str] = ()) -> None:
        self.app = app
        self.allowed = frozenset(o.rstrip("/").lower() for o in allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            origin, host = _origin_of(scope)
            if (
                origin is not None
                and origin.rstrip("/").lower() not in self.allowed
                and not same_origin(origin, host)
            ):
                await send({"type": "websocket.close", "code": 1008, "reason": "origin"})
                return
        await self.app(scope, receive, send)
