from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, status

from gateway.api import queries
from gateway.api.deps import (
    DatabaseDep,
    Permission,
    QuarantineFilterDep,
    QuarantinePageDep,
    SinceDep,
    require,
)
from gateway.api.schemas import ErrorMessage, Page, QuarantinePublic, QuarantineStats

router = APIRouter(
    prefix="/quarantine",
    tags=["quarantine"],
    dependencies=[Depends(require(Permission.QUARANTINE_READ))],
)


@router.get("")
async def list_quarantine(
    db: DatabaseDep, flt: QuarantineFilterDep, page: QuarantinePageDep
) -> Page[QuarantinePublic]:
    """Messages that did not become events, newest first. Raw payloads are previews here
    (see ``raw_truncated``); one record shows all stored bytes."""
    return await db.run(queries.list_quarantine, flt, page)


@router.get("/stats")
async def quarantine_stats(db: DatabaseDep, since: SinceDep) -> QuarantineStats:
    """Quarantined messages per reason: the records stored (``since`` on received_at), and
    every message received, stored or only counted past the row rates (per minute)."""
    return await db.run(queries.quarantine_stats, since)


@router.get("/{record_id}", responses={404: {"model": ErrorMessage}})
async def get_quarantined(
    record_id: Annotated[int, Path(ge=1, le=2**62)], db: DatabaseDep
) -> QuarantinePublic:
    record = await db.run(queries.get_quarantined, record_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"quarantine record {record_id} not found")
    return record
