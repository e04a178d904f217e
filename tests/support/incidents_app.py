"""The incidents' routes (incidents, alarms, notifications, statistics, grid) as the tests
mount them on an app of their own: the routers, and the runtime they read."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from gateway.grid import routes as grid_routes
from gateway.incidents import routes as incidents_routes

ROUTERS: list[APIRouter] = [*incidents_routes.routers, grid_routes.router]


def with_incidents(app: Any, runtime: Any) -> Any:
    """``app`` with ``runtime`` as the incidents runtime its routes read."""
    app.state.incidents = runtime
    return app
