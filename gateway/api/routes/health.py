from __future__ import annotations

from fastapi import APIRouter, Depends

from gateway import __version__
from gateway.api.deps import DatabaseDep, Permission, RuntimeDep, require
from gateway.health import HealthReport

router = APIRouter(tags=["health"], dependencies=[Depends(require(Permission.HEALTH_READ))])


@router.get("/health")
async def health(runtime: RuntimeDep, db: DatabaseDep) -> HealthReport:
    """Broker connection, database (checked now with ``SELECT 1``), ingest and writer
    counters, lag. Always 200: read ``status`` (``ok`` or ``degraded``)."""
    report = runtime.health()
    return report.with_database(await db.check(), __version__)
