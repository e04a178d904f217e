"""The HTTP API application: ``create_app(runtime)``."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import HTMLResponse

from gateway import __version__
from gateway.api.deps import get_current_principal
from gateway.api.docs import CSP, OPENAPI_URL, render_docs
from gateway.api.routes import api_router
from gateway.api.runtime import Runtime

TITLE = "Lianfang 联防 gateway"
DESCRIPTION = (
    "Devices, events, quarantined messages and gateway health of the Lianfang "
    "smart-community security gateway. Times are ISO 8601; responses are UTC."
)


def create_app(runtime: Runtime, *, extra_routers: Sequence[APIRouter] = ()) -> FastAPI:
    """The API for one running gateway. ``extra_routers`` (incidents, accounts, …) are
    mounted as given, behind the same authentication seam as the built-in routes."""
    app = FastAPI(
        title=TITLE,
        version=__version__,
        description=DESCRIPTION,
        openapi_url=OPENAPI_URL,
        docs_url=None,  # the default pages load Swagger UI / ReDoc from a CDN
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    app.state.runtime = runtime
    seam = [Depends(get_current_principal)]
    app.include_router(api_router, dependencies=seam)
    for router in extra_routers:
        app.include_router(router, dependencies=seam)

    @app.get("/docs", include_in_schema=False, dependencies=seam)
    async def docs(request: Request) -> HTMLResponse:
        page: str | None = getattr(request.app.state, "docs_html", None)
        if page is None:
            page = request.app.state.docs_html = render_docs(request.app.openapi())
        return HTMLResponse(page, headers={"Content-Security-Policy": CSP})

    return app
