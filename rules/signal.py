"""Incident signals: what the rules engine hands to the incident pipeline."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.events import EventType
from rules.model import Category, Severity


class SignalEvent(BaseModel):
    """Brief of one event that made (or was attached to) a signal."""

    model_config = ConfigDict(frozen=True)
    event_id: str
    type: EventType
    device_id: str
    occurred_at: datetime


class Signal(BaseModel):
    """``kind="new"`` opens a signal; ``kind="update"`` (same ``signal_id``) attaches later
    events, resolves it (device back, door closed) or downgrades it (panic cancelled). A signal
    is never deleted."""

    model_config = ConfigDict(frozen=True)

    signal_id: str = Field(..., description="Stable per rule + group + cooldown period")
    kind: Literal["new", "update"]
    state: Literal["firing", "resolved", "cancelled"] = "firing"
    rule_id: str
    severity: Severity
    category: Category
    title_zh: str
    title_en: str
    group_key: str
    events: list[SignalEvent] = Field(default_factory=list, description="New events (bounded)")
    event_count: int = Field(0, description="Events attached to this signal so far")
    site: str | None = None
    zone: str | None = None
    device_id: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    explanation: str = ""
    fired_at: datetime = Field(..., description="Event time (or timer deadline) it fired at")

    def brief(self) -> dict[str, object]:
        """The fields ``lianfang rules test`` prints and compares."""
        return {
            "kind": self.kind,
            "state": self.state,
            "rule_id": self.rule_id,
            "severity": self.severity.value,
            "group_key": self.group_key,
            "fired_at": self.fired_at.isoformat().replace("+00:00", "Z"),
        }
