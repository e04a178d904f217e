from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, status

from gateway.api import queries
from gateway.api.deps import DatabaseDep, EventFilterDep, EventPageDep, Permission, require
from gateway.api.schemas import ErrorMessage, EventDetail, EventPublic, Page

router = APIRouter(
    prefix="/events", tags=["events"], dependencies=[Depends(require(Permission.EVENTS_READ))]
)


@router.get("")
async def list_events(
    db: DatabaseDep, flt: EventFilterDep, page: EventPageDep
) -> Page[EventPublic]:
    """Stored events, newest first (storage order). ``since`` / ``until`` apply to the
    device time ``occurred_at``."""
    return await db.run(queries.list_events, flt, page)


@router.get("/{event_id:path}", responses={404: {"model": ErrorMessage}})
async def get_event(event_id: str, db: DatabaseDep) -> EventDetail:
    """One event, with its bounded raw payload."""
    event = await db.run(queries.get_event, event_id)
    if event is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"event {event_id!r} not found")
    return event
