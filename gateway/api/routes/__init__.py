"""HTTP routes, one module per resource. ``api_router`` mounts them all under ``/api``."""

from __future__ import annotations

from fastapi import APIRouter

from gateway.api.routes import devices, district, events, health, quarantine, stream

api_router = APIRouter(prefix="/api")
api_router.include_router(health.router)
api_router.include_router(devices.router)
api_router.include_router(stream.router)  # before events: /events/stream, not /events/{id}
api_router.include_router(events.router)
api_router.include_router(quarantine.router)
api_router.include_router(district.router)  # the district's questions (docs/datapool.md)
api_router.include_router(district.incidents_router)

__all__ = ["api_router"]
