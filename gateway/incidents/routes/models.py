"""Request and answer bodies of the incidents routes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from gateway.ids import DeviceId, Id
from gateway.incidents.categories import IncidentCategory, Severity
from gateway.incidents.lifecycle import Action, Stage
from gateway.incidents.service import AckOutcome


class GeoPoint(BaseModel):
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    address: str = Field("", max_length=200)


class ReportIn(BaseModel):
    """A manual report by staff (patrol, phone call)."""

    category: IncidentCategory
    severity: Severity = Severity.P3
    title_zh: str = Field(..., min_length=1, max_length=300)
    title_en: str = Field("", max_length=300)
    description: str = Field("", max_length=4000)
    site: Id | None = None
    cell: Id | None = None
    place: Id | None = None
    device_id: DeviceId | None = None
    household: Id | None = None
    location: GeoPoint | None = None
    actor: str | None = Field(None, max_length=100, description="Who files it (person id)")
    role: str = Field("", max_length=32)


class HazardIn(BaseModel):
    """A resident's 随手报: text, location; photos are uploaded as attachments after."""

    text: str = Field(..., min_length=1, max_length=2000)
    location: GeoPoint
    category: IncidentCategory = IncidentCategory.HAZARD
    site: Id | None = None
    cell: Id | None = None
    household: Id | None = None
    reporter: str | None = Field(None, max_length=100)


class ActionIn(BaseModel):
    action: Action
    actor: str | None = Field(None, max_length=100)
    role: str = Field("", max_length=32)
    note: str = Field("", max_length=4000)
    assignees: list[Id] = Field(
        default_factory=list, max_length=20, description="Grid people in the incident's scope"
    )
    score: int | None = Field(None, description="evaluate: 1–5")
    attachments: list[str] = Field(default_factory=list, max_length=20)


class AckIn(BaseModel):
    actor: str | None = Field(None, max_length=100)


class Created(BaseModel):
    id: int


class AcknowledgementOut(BaseModel):
    outcome: AckOutcome = Field(..., description="recorded, or duplicate: taken before")
    acked_at: datetime
    acked_by: str = Field(..., description="Who took the incident")


class StageOut(BaseModel):
    id: int
    stage: Stage
    allowed: list[Action]
    acknowledgement: AcknowledgementOut | None = Field(
        None, description="acknowledge: recorded, or a repeat that recorded nothing"
    )
