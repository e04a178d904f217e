"""The HTTP API application: ``create_app(runtime)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from gateway import __version__
from gateway.api.deps import get_current_principal
from gateway.api.docs import CSP, OPENAPI_URL, render_docs
from gateway.api.routes import api_router, probes
from gateway.api.runtime import Runtime
from gateway.api.security import SecureHeadersMiddleware, WebSocketOriginMiddleware
from gateway.api.storable import storable_input

if TYPE_CHECKING:
    from gateway.auth.service import AuthService

TITLE = "Lianfang 联防 gateway"
DESCRIPTION = (
    "Devices, events, quarantined messages and gateway health of the Lianfang "
    "smart-community security gateway. Times are ISO 8601; responses are UTC."
)


def create_app(
    runtime: Runtime,
    *,
    extra_routers: Sequence[APIRouter] = (),
    auth: AuthService | None = None,
    cors_origins: Sequence[str] = (),
    trusted_proxies: Sequence[str] = (),
) -> FastAPI:
    """The API for one running gateway. ``extra_routers`` (incidents, …) are mounted as
    given, behind the same authentication as the built-in routes.

    ``auth`` (the accounts service) enables logins, sessions and tokens, the account and
    audit routes, and the audit middleware. When not given, a configured ``Gateway`` gets
    one on its own database; any other runtime gets none and every call is refused (401).
    CORS is closed unless ``cors_origins`` lists the console's origins.

    The client's address (rate limits, audit rows, sessions) is the connection's peer;
    ``X-Forwarded-For``/``-Proto`` are believed only from ``trusted_proxies`` (addresses or
    networks of the reverse proxies in front), never by default."""
    app = FastAPI(
        title=TITLE,
        version=__version__,
        description=DESCRIPTION,
        openapi_url=OPENAPI_URL,
        docs_url=None,  # the default pages load Swagger UI / ReDoc from a CDN
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    if auth is None:
        from gateway.auth.runtime import accounts_of_runtime

        auth = accounts_of_runtime(runtime)  # a configured gateway always gets accounts
    app.state.runtime = runtime
    app.state.auth = auth
    # Who is calling, then text the database cannot store refused (422) on every route.
    seam = [Depends(get_current_principal), Depends(storable_input)]
    # /healthz and /readyz: the only routes answered without login; nothing in their bodies.
    app.include_router(probes.router)
    app.include_router(api_router, dependencies=seam)
    for router in extra_routers:
        app.include_router(router, dependencies=seam)
    if auth is not None:
        from gateway.audit.middleware import AuditMiddleware
        from gateway.auth import routes as auth_routes

        app.include_router(auth_routes.public_router, dependencies=[Depends(storable_input)])
        for router in auth_routes.routers:
            app.include_router(router, dependencies=seam)
        app.add_middleware(AuditMiddleware, audit=auth.audit)
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(SecureHeadersMiddleware)
    app.add_middleware(WebSocketOriginMiddleware, allowed_origins=list(cors_origins))
    if trusted_proxies:  # outermost: everything inside sees the client behind the proxy
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(trusted_proxies))

    @app.get("/docs", include_in_schema=False, dependencies=seam)
    async def docs(request: Request) -> HTMLResponse:
        page: str | None = getattr(request.app.state, "docs_html", None)
        if page is None:
            page = request.app.state.docs_html = render_docs(request.app.openapi())
        return HTMLResponse(page, headers={"Content-Security-Policy": CSP})

    return app
