"""The console's routes: ``/api/web`` (behind the API's authentication seam) and the HTML
pages (not behind it: they hold the sign-in page). Each reads the console's view of the
running gateway from ``app.state.web`` (a ``WebContext``)."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.web.routes import incidents, pages, tools

api_routers: list[APIRouter] = [incidents.router, tools.router]
pages_router: APIRouter = pages.router

__all__ = ["api_routers", "pages_router"]
