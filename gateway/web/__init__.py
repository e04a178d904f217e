"""The web console (command centre, police alarm desk, grid-worker and resident pages,
devices, rules and routing, incident detail), served by the gateway itself.

Wiring (after the incidents runtime is built)::

    from gateway.web import WebConsole

    web = WebConsole(gateway, incidents)
    app = create_app(gateway, extra_routers=[*gateway.routers, *incidents.routers, web.api_router])
    app.include_router(web.pages_router)  # not behind the API seam: it holds the sign-in page

Everything is in the package (templates, CSS, ES modules): nothing is fetched from outside.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import APIRouter

from gateway.web.api import build_web_api
from gateway.web.context import WebContext
from gateway.web.pages import build_pages

if TYPE_CHECKING:
    from gateway.incidents.runtime import IncidentsRuntime
    from gateway.runtime import Gateway


class WebConsole:
    def __init__(self, gateway: Gateway, incidents: IncidentsRuntime) -> None:
        self.context = WebContext(gateway, incidents)
        self.api_router: APIRouter = build_web_api(self.context)
        self.pages_router: APIRouter = build_pages(self.context)


__all__ = ["WebConsole", "WebContext"]
