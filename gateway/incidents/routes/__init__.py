"""The incidents' HTTP routes, one module per resource; every route takes the running
incidents runtime from ``app.state.incidents`` (``deps.IncidentsDep``)::

    app = create_app(gateway, extra_routers=routes.routers)
    app.state.incidents = incidents_runtime
"""

from __future__ import annotations

from fastapi import APIRouter

from gateway.incidents.routes import alarms, incidents, notifications, stats

routers: list[APIRouter] = [
    incidents.router,
    incidents.reports_router,
    notifications.router,
    stats.router,
    alarms.router,
]

__all__ = ["routers"]
