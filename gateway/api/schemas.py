"""Public response models, one set per resource.

These are the API's contract: storage rows and bus events are converted into them, never
returned directly. ``kind``, ``type`` and ``reason`` are plain strings in responses so that a
row written under an older vocabulary still lists instead of failing the whole page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, computed_field

from gateway.events import Event
from rules.lateness import arrival_delay_s

T = TypeVar("T")

_PUBLIC = ConfigDict(frozen=True)


class ErrorMessage(BaseModel):
    detail: str


class Page(BaseModel, Generic[T]):
    """One page of a listing, newest first. Pass ``next_cursor`` back as ``cursor`` for the
    next page; it is null on the last page."""

    model_config = _PUBLIC
    items: list[T]
    next_cursor: str | None = None


# -- events -----------------------------------------------------------------------


class EventPublic(BaseModel):
    model_config = _PUBLIC

    seq: int | None = Field(
        None, description="Storage order (pagination key); null on live-stream events"
    )
    event_id: str
    site: str
    device_id: str
    kind: str = Field(..., description="Device kind (see DeviceKind)")
    type: str = Field(..., description="Event type (see EventType)")
    occurred_at: datetime = Field(..., description="Device time (UTC)")
    received_at: datetime = Field(..., description="Gateway time (UTC)")
    attributes: dict[str, Any] = Field(default_factory=dict)
    source: str = ""

    @computed_field(  # type: ignore[prop-decorator]
        description="received_at - occurred_at, seconds: beyond the rules' late tolerance "
        "(GET /api/rules), only panic and absence rules used the event"
    )
    @property
    def arrival_delay_s(self) -> float:
        return round(arrival_delay_s(self.occurred_at, self.received_at), 3)

    @classmethod
    def from_event(cls, event: Event) -> EventPublic:
        """The same shape as the stored row, so live and stored events look alike."""
        from gateway.storage.writer import event_row

        row = event_row(event)
        row.pop("raw")
        return cls.model_validate(row)


class EventDetail(EventPublic):
    raw: str = Field("", description="Bounded raw payload as received")


# -- devices ----------------------------------------------------------------------


class DevicePublic(BaseModel):
    model_config = _PUBLIC

    id: str
    site: str
    kind: str
    name: str = ""
    place: str | None = None
    zone: str | None = None
    household: str | None = None
    camera: str | None = None
    registered: bool = Field(..., description="Declared in the site registry (else first seen)")
    profile: str | None = Field(None, description="Profile id expected for this device")
    source: str | None = Field(
        None,
        description='"console" when added or edited in the console (kept over the site '
        "file's entry); null when from config/sites or first seen",
    )
    online: bool | None = Field(
        None, description="Last reported state: false after an offline event; null if never seen"
    )
    last_seen_at: datetime | None = None
    last_event_type: str | None = None
    battery_pct: int | None = None
    heartbeat_s: int | None = Field(None, description="Expected heartbeat period, if declared")
    overdue: bool | None = Field(
        None,
        description="Not heard from for more than twice its heartbeat period "
        "(null when no heartbeat is declared)",
    )


# -- quarantine -------------------------------------------------------------------


class QuarantinePublic(BaseModel):
    model_config = _PUBLIC

    id: int
    received_at: datetime
    topic: str
    reason: str = Field(..., description="Why the message was quarantined (see Reason)")
    detail: str
    device_id: str | None = None
    size: int = Field(..., description="Original payload size in bytes")
    raw_text: str = Field(
        ...,
        description="Stored bytes as text: UTF-8 with undecodable bytes and control "
        "characters escaped as \\xNN; bounded",
    )
    raw_base64: str = Field(..., description="Stored bytes, base64; bounded")
    raw_truncated: bool = Field(
        ..., description="True when raw_text / raw_base64 show less than the original payload"
    )


class QuarantineStats(BaseModel):
    model_config = _PUBLIC

    total: int = Field(..., description="Records stored (sampled: see received_total)")
    by_reason: dict[str, int] = Field(
        ..., description="Records stored per reason, every known reason"
    )
    received_total: int = Field(
        ...,
        description="Every quarantined message, stored or only counted (past the row rates); "
        "counted per clock minute, so `since` applies from the minute holding it",
    )
    received_by_reason: dict[str, int] = Field(
        ..., description="Every quarantined message per reason, every known reason"
    )
