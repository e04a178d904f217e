"""``POST /api/alarms``: the one-button alarm (一键报警) from the resident app or the desk.

The same P1 panic as a pressed button, routed to police, community, grid and neighbours.
A resident raises it for their own household only; staff for households in their scope.
Rate limited per account (``auth.alarm_rate``).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, status
from pydantic import BaseModel, Field

from gateway.api.deps import CurrentPrincipal, require
from gateway.auth.guards import alarm_rate, household_allowed, own_household
from gateway.auth.principal import Permission
from gateway.ids import Id
from gateway.incidents.categories import IncidentCategory, Severity, Source
from gateway.incidents.routes.deps import IncidentsDep
from gateway.incidents.service import Report


class AlarmIn(BaseModel):
    household: Id | None = Field(
        None, description="Household id; residents may omit it (their own)"
    )
    note: str = Field("", max_length=500)


class AlarmOut(BaseModel):
    id: int = Field(..., description="The incident opened or joined")


router = APIRouter(prefix="/api/alarms", tags=["incidents"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    dependencies=[
        Depends(require(Permission.ALARM_RAISE)),
        Depends(household_allowed),
        Depends(alarm_rate),
    ],
    responses={403: {}, 422: {}, 429: {}},
)
async def raise_alarm(
    body: AlarmIn, principal: CurrentPrincipal, incidents: IncidentsDep
) -> AlarmOut:
    """一键报警 / raise the one-button alarm for a household."""
    household = body.household or own_household(principal)
    if household is None or household not in incidents.grid.households:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "未知住户 / unknown household")
    new_id = await incidents.service.report(
        Report(
            source=Source.MANUAL,
            category=IncidentCategory.PANIC,
            severity=Severity.P1,
            title_zh="一键报警（App）",
            title_en="One-button alarm (app)",
            description=body.note,
            household=household,
            reporter=principal.actor,
            role=principal.role,
        )
    )
    return AlarmOut(id=new_id)
