from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, status

from gateway.api import queries
from gateway.api.deps import (
    CurrentPrincipal,
    DatabaseDep,
    EventFilterDep,
    EventPageDep,
    Permission,
    require,
)
from gateway.api.schemas import ErrorMessage, EventDetail, EventPublic, Page
from gateway.auth.guards import visible_event
from gateway.auth.masking import mask_event

router = APIRouter(
    prefix="/events", tags=["events"], dependencies=[Depends(require(Permission.EVENTS_READ))]
)


@router.get("")
async def list_events(
    db: DatabaseDep, flt: EventFilterDep, page: EventPageDep, principal: CurrentPrincipal
) -> Page[EventPublic]:
    """Stored events, newest first (storage order). ``since`` / ``until`` apply to the
    device time ``occurred_at``."""
    result = await db.run(queries.list_events, flt, page)
    return result.model_copy(update={"items": [mask_event(e, principal) for e in result.items]})


@router.get(
    "/{event_id:path}",
    responses={404: {"model": ErrorMessage}},
    dependencies=[Depends(visible_event)],
)
async def get_event(event_id: str, db: DatabaseDep, principal: CurrentPrincipal) -> EventDetail:
    """One event, with its bounded raw payload."""
    event = await db.run(queries.get_event, event_id)
    if event is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"event {event_id!r} not found")
    return mask_event(event, principal)
