"""The incident service's vocabulary: what comes in (reports, actions), the stored incident
as a typed record, and what a write hands back to be sent.

Every job module of the service (``opening``, ``grouping``, ``updates``, ``reports``,
``actions``, ``acknowledgement``, ``escalation``) speaks in these types, so a row read from
the database travels as an ``IncidentRecord``, not as a dictionary.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from gateway.grid.directory import GridDirectory, Location
from gateway.incidents.categories import IncidentCategory, Severity, Source
from gateway.incidents.lifecycle import Action, Stage
from gateway.notify.base import IncidentPlace
from gateway.notify.dispatcher import Outgoing

SYSTEM = "system"  # the actor of entries the gateway records itself
MAX_EVENT_IDS = 50  # an incident keeps its newest event ids only


class IncidentNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class Report:
    """A manual report or a resident's 随手报."""

    source: Source
    category: IncidentCategory
    severity: Severity
    title_zh: str
    title_en: str = ""
    description: str = ""
    site: str | None = None
    cell: str | None = None
    place: str | None = None
    device_id: str | None = None
    household: str | None = None
    location: dict[str, Any] | None = None
    reporter: str = ""
    role: str = ""
    attachments: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ActionInput:
    action: Action
    actor: str
    role: str = ""
    note: str = ""
    assignees: tuple[str, ...] = ()
    score: int | None = None
    attachments: tuple[str, ...] = ()


class AckOutcome(StrEnum):
    """What became of a recipient's acknowledgement (``IncidentService.acknowledge_as``)."""

    RECORDED = "recorded"
    DUPLICATE = "duplicate"  # every notification of that recipient was already acknowledged
    NOT_FOUND = "not_found"  # no such notification or incident
    NOT_ADDRESSED = "not_addressed"  # it exists, but was not sent to that recipient


@dataclass(frozen=True, slots=True)
class AckResult:
    """A recipient's acknowledgement of its notifications."""

    outcome: AckOutcome
    notification_id: int | None = None
    incident_id: int | None = None
    target: str = ""
    detail: str = ""
    took_incident: bool = False  # it was the incident's acknowledgement (``taking``)


@dataclass(frozen=True, slots=True)
class IncidentAck:
    """An acknowledgement of the incident itself (确认接警). ``DUPLICATE``: it had been
    acknowledged before, by ``acked_by`` at ``acked_at``, and nothing was recorded."""

    outcome: AckOutcome
    incident_id: int
    stage: Stage
    acked_at: datetime
    acked_by: str


@dataclass(frozen=True, slots=True)
class Acted:
    """The incident after a workflow action."""

    stage: Stage
    acknowledged: bool  # taken (``acked_at`` set): acknowledge is no longer offered
    acknowledgement: IncidentAck | None = None  # of an acknowledge: recorded or duplicate


class Stored(StrEnum):
    """What storing a rule signal did (counted in ``ServiceStats``)."""

    OPENED = "opened"  # a new incident
    GROUPED = "grouped"  # attached to the open incident of its group
    UPDATED = "updated"  # a later update of a signal already stored
    IGNORED = "ignored"  # stored before (redelivered), or an update of an unknown signal


@dataclass
class ServiceStats:
    signals: int = 0
    opened: int = 0
    grouped: int = 0
    updates: int = 0
    ignored: int = 0
    errors: int = 0

    def count(self, stored: Stored | None) -> None:
        if stored is Stored.OPENED:
            self.opened += 1
        elif stored is Stored.GROUPED:
            self.grouped += 1
        elif stored is Stored.UPDATED:
            self.updates += 1
        elif stored is Stored.IGNORED:
            self.ignored += 1


@dataclass
class Written:
    """What one write transaction hands back: rows to send, deadlines to watch, and the
    incident it touched (for the console push)."""

    incident_id: int | None = None
    created: bool = False
    rows: list[Outgoing] = field(default_factory=list)
    deadlines: list[tuple[datetime, int]] = field(default_factory=list)
    stage: Stage | None = None
    acknowledged: bool = False  # of incident_id, after the write
    place: IncidentPlace | None = None  # of incident_id: scopes the console push
    stored: Stored | None = None

    def touched(self, incident: IncidentRecord, *, created: bool = False) -> Written:
        self.incident_id, self.place = incident.id, incident.console_place
        self.created, self.acknowledged = created, incident.acked_at is not None
        return self


@dataclass(frozen=True, slots=True)
class IncidentDraft:
    """The columns of an incident about to be opened (``rows.insert_incident``)."""

    source: Source
    category: str
    severity: str
    title_zh: str
    title_en: str
    description: str
    site: str | None
    cell: str | None
    community: str | None
    place: str | None
    device_id: str | None
    household: str | None
    opened_at: datetime
    location: dict[str, Any] | None = None
    rule_id: str | None = None
    group_key: str | None = None
    signal_state: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    event_ids: list[str] = field(default_factory=list)
    event_count: int = 0
    signal_count: int = 0
    reporter: str | None = None

    def columns(self) -> dict[str, Any]:
        return {
            "source": self.source.value,
            "category": self.category,
            "severity": self.severity,
            "title_zh": self.title_zh[:300],
            "title_en": self.title_en[:300],
            "description": self.description,
            "stage": Stage.DISCOVERED.value,
            "site": self.site,
            "cell": self.cell,
            "community": self.community,
            "place": self.place,
            "device_id": self.device_id,
            "household": self.household,
            "location": self.location,
            "rule_id": self.rule_id,
            "group_key": self.group_key,
            "signal_state": self.signal_state,
            "labels": dict(self.labels),
            "event_ids": list(self.event_ids),
            "event_count": self.event_count,
            "signal_count": self.signal_count,
            "assignees": [],
            "reporter": self.reporter,
            "opened_at": self.opened_at,
            "updated_at": self.opened_at,
            "last_notified_at": None,
        }


@dataclass(slots=True)
class IncidentRecord:
    """One row of ``incidents``, as stored."""

    id: int
    source: str
    category: str
    severity: str
    title_zh: str
    title_en: str
    description: str
    stage: str
    site: str | None
    cell: str | None
    community: str | None
    place: str | None
    device_id: str | None
    household: str | None
    location: dict[str, Any] | None
    rule_id: str | None
    group_key: str | None
    signal_state: str | None
    labels: dict[str, str]
    event_ids: list[str]
    event_count: int
    signal_count: int
    assignees: list[str]
    reporter: str | None
    opened_at: datetime
    updated_at: datetime
    score: int | None = None
    evaluation: str | None = None
    acked_at: datetime | None = None
    acked_by: str | None = None
    closed_at: datetime | None = None
    last_notified_at: datetime | None = None

    @classmethod
    def from_row(cls, row: Any) -> IncidentRecord:
        """From a result row (extra columns of a join are left out)."""
        m = row._mapping
        return cls(**{f.name: m[f.name] for f in _INCIDENT_FIELDS if f.name in m})

    @classmethod
    def from_draft(cls, incident_id: int, draft: IncidentDraft) -> IncidentRecord:
        return cls(id=incident_id, **draft.columns())

    @property
    def console_place(self) -> IncidentPlace:
        """Where it is and who reported it: what live console viewers are filtered on."""
        return IncidentPlace(self.cell, self.site, self.reporter)

    def located_on(self, grid: GridDirectory) -> Location:
        """Where the grid puts it now (who is told goes by this)."""
        return grid.locate(
            site=self.site, device_id=self.device_id, household=self.household, cell=self.cell
        )

    @property
    def current_stage(self) -> Stage:
        return Stage(self.stage)

    def apply(self, values: dict[str, Any]) -> None:
        """Keep the record in step with an ``UPDATE … SET values`` just written."""
        for key, value in values.items():
            setattr(self, key, value)


_INCIDENT_FIELDS = fields(IncidentRecord)


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    """The columns of an outbox row that acknowledgement and escalation read."""

    id: int
    incident_id: int
    target: str
    recipient_kind: str
    recipient_id: str
    recipient_name: str
    channel: str
    status: str
    ack_required: bool
    ack_deadline: datetime | None
    acked_at: datetime | None
    escalated_at: datetime | None
    level: int

    @classmethod
    def from_row(cls, row: Any) -> NotificationRecord:
        m = row._mapping
        return cls(**{f.name: m[f.name] for f in _NOTIFICATION_FIELDS})

    @property
    def recipient(self) -> str:
        return f"{self.recipient_kind}/{self.recipient_id}"

    @property
    def named(self) -> str:
        """``王警官 (police-desk/beat-1)``, as the timeline names a recipient."""
        return f"{self.recipient_name} ({self.recipient})"


_NOTIFICATION_FIELDS = fields(NotificationRecord)
