"""The one typed event every device message becomes.

Vocabulary (``EventType``), device kinds (``DeviceKind``) and typed attributes per kind live
here; everything downstream (storage, rules, incidents) speaks only this model.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

RAW_PAYLOAD_LIMIT = 4096  # characters of the raw payload kept with an event


class DeviceKind(StrEnum):
    ACCESS = "access"  # door-access controller / door unit (门禁)
    GATE = "gate"  # barrier gate with plate recognition (车辆道闸)
    PERIMETER = "perimeter"  # perimeter camera or fence sensor (周界)
    ALARM = "alarm"  # household one-button panic alarm (十户联防一键报警)
    SENSOR = "sensor"  # other sensors: door contact, smoke, water


class EventType(StrEnum):
    """The documented event vocabulary. See ``docs/events.md``."""

    # access control
    ACCESS_GRANTED = "access_granted"
    ACCESS_DENIED = "access_denied"
    DOOR_OPEN = "door_open"
    DOOR_CLOSED = "door_closed"
    DOOR_FORCED_OPEN = "door_forced_open"
    DOOR_HELD_OPEN = "door_held_open"
    TAMPER = "tamper"
    PERSON_CAPTURED = "person_captured"  # a capture camera recorded a face or person
    # vehicles
    PLATE_READ = "plate_read"
    VEHICLE_DENIED = "vehicle_denied"
    # perimeter / video
    INTRUSION = "intrusion"
    LINE_CROSSING = "line_crossing"
    MOTION = "motion"
    VIDEO_LOSS = "video_loss"
    # alarms
    PANIC = "panic"
    PANIC_CANCEL = "panic_cancel"
    ALARM_INPUT = "alarm_input"
    # device health
    HEARTBEAT = "heartbeat"
    ONLINE = "online"
    OFFLINE = "offline"
    BATTERY_LOW = "battery_low"
    # alarm panels (SIA DC-09: Contact ID and SIA-DCS codes)
    FIRE = "fire"
    TROUBLE = "trouble"
    RESTORE = "restore"
    ARMED = "armed"
    DISARMED = "disarmed"


class Direction(StrEnum):
    IN = "in"
    OUT = "out"
    UNKNOWN = "unknown"


class PlateColour(StrEnum):
    BLUE = "blue"  # 蓝牌 ordinary passenger car
    YELLOW = "yellow"  # 黄牌 large vehicle
    GREEN = "green"  # 绿牌 new-energy vehicle
    WHITE = "white"  # 白牌 police / military
    BLACK = "black"  # 黑牌 foreign / consulate
    UNKNOWN = "unknown"


_ATTR_CONFIG = ConfigDict(frozen=True, extra="forbid")


class _CommonAttributes(BaseModel):
    """Fields any device may report."""

    model_config = _ATTR_CONFIG
    zone: str | None = Field(None, max_length=64, description="Zone, door or lane label")
    battery_pct: int | None = Field(None, ge=0, le=100)
    # Vendor values the profile maps but the model does not type: scalars only, bounded.
    extra: dict[str, str | int | float | bool | None] = Field(default_factory=dict, max_length=32)


class AccessAttributes(_CommonAttributes):
    kind: Literal["access"] = "access"
    door: str | None = Field(None, max_length=64)
    direction: Direction | None = None
    # Personal identifiers are never stored raw: keyed hash references (see gateway.privacy).
    card_ref: str | None = Field(None, max_length=64)
    person_ref: str | None = Field(None, max_length=64)
    card_masked: str | None = Field(None, max_length=32)


class GateAttributes(_CommonAttributes):
    kind: Literal["gate"] = "gate"
    plate: str | None = Field(None, max_length=16)
    plate_colour: PlateColour | None = None
    direction: Direction | None = None
    confidence: float | None = Field(None, ge=0, le=1)
    lane: str | None = Field(None, max_length=32)


class PerimeterAttributes(_CommonAttributes):
    kind: Literal["perimeter"] = "perimeter"
    label: str | None = Field(None, max_length=32, description="Detected object class")
    confidence: float | None = Field(None, ge=0, le=1)
    track_id: str | None = Field(None, max_length=64)
    phase: Literal["start", "update", "end"] | None = None


class AlarmAttributes(_CommonAttributes):
    kind: Literal["alarm"] = "alarm"
    household: str | None = Field(None, max_length=64)
    button: str | None = Field(None, max_length=32)


class SensorAttributes(_CommonAttributes):
    kind: Literal["sensor"] = "sensor"
    contact: bool | None = Field(None, description="True when closed")
    value: float | None = None


Attributes = Annotated[
    AccessAttributes | GateAttributes | PerimeterAttributes | AlarmAttributes | SensorAttributes,
    Field(discriminator="kind"),
]
ATTRIBUTE_MODELS: dict[DeviceKind, type[_CommonAttributes]] = {
    DeviceKind.ACCESS: AccessAttributes,
    DeviceKind.GATE: GateAttributes,
    DeviceKind.PERIMETER: PerimeterAttributes,
    DeviceKind.ALARM: AlarmAttributes,
    DeviceKind.SENSOR: SensorAttributes,
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """One normalised device event. Immutable; ``event_id`` identifies redeliveries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(..., min_length=1, max_length=128)
    occurred_at: datetime = Field(..., description="Device time (UTC)")
    received_at: datetime = Field(..., description="Gateway time (UTC)")
    site: str = Field(..., min_length=1, max_length=64, description="Compound / site id")
    device_id: str = Field(..., min_length=1, max_length=128)
    kind: DeviceKind
    type: EventType
    attributes: Attributes
    source: str = Field("", max_length=64, description="Profile or adapter that produced it")
    raw: str = Field("", max_length=RAW_PAYLOAD_LIMIT, description="Bounded raw payload")

    @model_validator(mode="before")
    @classmethod
    def _default_attributes(cls, data: Any) -> Any:
        # Let callers omit attributes, or give them without the discriminator.
        if isinstance(data, dict):
            kind = data.get("kind")
            attrs = data.get("attributes")
            if attrs is None:
                data = {**data, "attributes": {"kind": str(kind)}}
            elif isinstance(attrs, dict) and "kind" not in attrs:
                data = {**data, "attributes": {**attrs, "kind": str(kind)}}
        return data

    @field_validator("occurred_at", "received_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # One time zone inside the gateway: storage and windows compare these directly.
        if value.tzinfo is None:
            raise ValueError("must be timezone-aware")
        return value if value.tzinfo is UTC else value.astimezone(UTC)

    @model_validator(mode="after")
    def _check(self) -> Event:
        if self.attributes.kind != self.kind.value:
            raise ValueError(
                f"attributes are for kind {self.attributes.kind!r}, event kind is {self.kind.value!r}"
            )
        return self
