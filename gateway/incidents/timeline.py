"""Entries of the append-only incident timeline: who did what, when, from and to which stage.

Entries are inserted, never updated or deleted (``tables.incident_timeline``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert

from gateway.incidents.lifecycle import Action, Stage
from gateway.incidents.records import SYSTEM
from gateway.incidents.tables import incident_timeline
from rules.signal import Signal

MAX_NOTE = 4000


@dataclass(frozen=True, slots=True, kw_only=True)
class TimelineEntry:
    incident_id: int
    at: datetime
    actor: str
    role: str
    action: Action
    before: Stage | None = None  # the stage it moved from (a stage change only)
    after: Stage | None = None  # the stage it moved to
    note: str = ""
    attachments: Sequence[str] = ()
    data: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "at": self.at,
            "actor": self.actor,
            "role": self.role,
            "action": self.action.value,
            "from_stage": self.before.value if self.before else None,
            "to_stage": self.after.value if self.after else None,
            "note": self.note[:MAX_NOTE],
            "attachments": list(self.attachments),
            "data": self.data,
        }


def append(conn: Connection, *entries: TimelineEntry) -> None:
    if entries:
        conn.execute(insert(incident_timeline), [e.row() for e in entries])


def signal_update_entry(
    incident_id: int, at: datetime, signal: Signal, event_ids: list[str]
) -> TimelineEntry:
    """A later update of a signal: the rule's explanation and the new events."""
    return TimelineEntry(
        incident_id=incident_id,
        at=at,
        actor=SYSTEM,
        role="rules",
        action=Action.SIGNAL,
        note=signal.explanation,
        data={
            "signal_id": signal.signal_id,
            "state": signal.state,
            "events": event_ids,
            "severity": signal.severity.value,
        },
    )
