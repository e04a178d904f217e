"""Recording a recipient's acknowledgement of a notification (``POST
/api/notifications/{id}/ack``, or over MQTT: ``acks`` parses those).

An acknowledgement covers every notification of that recipient for the incident (all its
channels), which stops that recipient's deadline. The first acknowledgement of a responder
asked to acknowledge takes the incident, which stops every deadline (``taking``). A repeat
records nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import Connection, select, update

from gateway.grid.directory import GridDirectory
from gateway.incidents.lifecycle import Action
from gateway.incidents.records import AckOutcome, AckResult, NotificationRecord, Written
from gateway.incidents.rows import find_incident
from gateway.incidents.tables import incidents
from gateway.incidents.taking import take
from gateway.incidents.timeline import TimelineEntry, append
from gateway.notify.tables import notifications
from gateway.routing.model import RoutingConfig


@dataclass(frozen=True, slots=True, kw_only=True)
class RecipientAck:
    """An acknowledgement that arrived *as* a recipient (its own MQTT ack topic)."""

    recipient_kind: str
    recipient_id: str
    notification_id: int | None
    incident_id: int | None
    actor: str
    by: str = ""  # the operator the console names
    note: str = ""
    via: str = "mqtt"

    def owns(self, row: NotificationRecord) -> bool:
        return (row.recipient_kind, row.recipient_id) == (self.recipient_kind, self.recipient_id)

    @property
    def note_suffix(self) -> str:
        """`` via mqtt by 王警官: 已出警``, after the recipient on the timeline."""
        return (
            f" via {self.via}"
            + (f" by {self.by}" if self.by else "")
            + (f": {self.note}" if self.note else "")
        )


def _notification(conn: Connection, notification_id: int) -> NotificationRecord | None:
    row = conn.execute(select(notifications).where(notifications.c.id == notification_id)).first()
    return None if row is None else NotificationRecord.from_row(row)


def store_ack(
    conn: Connection,
    *,
    notification_id: int,
    actor: str,
    routing: RoutingConfig,
    grid: GridDirectory,
    now: datetime,
) -> tuple[AckResult, Written]:
    """``POST /api/notifications/{id}/ack``: on behalf of the notification's recipient."""
    written = Written()
    row = _notification(conn, notification_id)
    if row is None:
        return AckResult(AckOutcome.NOT_FOUND, notification_id), written
    recorded = record_ack(
        conn, row, actor=actor, routing=routing, grid=grid, now=now, written=written
    )
    written.incident_id = row.incident_id
    return _result(row, recorded), written


def store_recipient_ack(
    conn: Connection,
    *,
    ack: RecipientAck,
    routing: RoutingConfig,
    grid: GridDirectory,
    now: datetime,
) -> tuple[AckResult, Written]:
    """Check that what is acknowledged was addressed to that recipient, then record it."""
    written = Written()
    row, refused = _addressed(conn, ack)
    if row is None:
        assert refused is not None
        return refused, written
    data: dict[str, Any] = {"via": ack.via}
    if ack.by:
        data["by"] = ack.by
    recorded = record_ack(
        conn,
        row,
        actor=ack.actor,
        routing=routing,
        grid=grid,
        now=now,
        written=written,
        note_suffix=ack.note_suffix,
        data=data,
    )
    if recorded is not None:
        written.incident_id = row.incident_id
    return _result(row, recorded), written


def _result(row: NotificationRecord, recorded: Recorded | None) -> AckResult:
    if recorded is None:
        return AckResult(AckOutcome.DUPLICATE, row.id, row.incident_id, row.target)
    return AckResult(
        AckOutcome.RECORDED,
        row.id,
        row.incident_id,
        target=row.target,
        took_incident=recorded is Recorded.TOOK_INCIDENT,
    )


def _addressed(
    conn: Connection, ack: RecipientAck
) -> tuple[NotificationRecord | None, AckResult | None]:
    """The notification acknowledged, or why it is refused."""
    n = notifications.c
    if ack.notification_id is not None:
        row = _notification(conn, ack.notification_id)
        if row is None:
            return None, AckResult(AckOutcome.NOT_FOUND, ack.notification_id, ack.incident_id)
        if not ack.owns(row):
            return None, AckResult(
                AckOutcome.NOT_ADDRESSED,
                ack.notification_id,
                row.incident_id,
                detail=f"notification {ack.notification_id} was sent to {row.recipient}",
            )
        if ack.incident_id is not None and ack.incident_id != row.incident_id:
            return None, AckResult(
                AckOutcome.NOT_ADDRESSED,
                ack.notification_id,
                ack.incident_id,
                detail=f"notification {ack.notification_id} belongs to incident {row.incident_id}",
            )
        return row, None
    assert ack.incident_id is not None
    first = conn.execute(
        select(notifications)
        .where(
            n.incident_id == ack.incident_id,
            n.recipient_kind == ack.recipient_kind,
            n.recipient_id == ack.recipient_id,
        )
        .order_by(n.ack_required.desc(), n.id)
        .limit(1)
    ).first()
    if first is not None:
        return NotificationRecord.from_row(first), None
    exists = conn.execute(select(incidents.c.id).where(incidents.c.id == ack.incident_id)).first()
    outcome = AckOutcome.NOT_FOUND if exists is None else AckOutcome.NOT_ADDRESSED
    return None, AckResult(outcome, None, ack.incident_id)


class Recorded(Enum):
    RECIPIENT = "recipient"  # that recipient's notifications
    TOOK_INCIDENT = "took_incident"  # and, the first by a responder asked to, the incident


def record_ack(
    conn: Connection,
    row: NotificationRecord,
    *,
    actor: str,
    routing: RoutingConfig,
    grid: GridDirectory,
    now: datetime,
    written: Written,
    note_suffix: str = "",
    data: dict[str, Any] | None = None,
) -> Recorded | None:
    """Acknowledge every row of that recipient for the incident and add the timeline
    entry; a responder asked to acknowledge takes the incident if nobody has
    (``taking``). None, and nothing recorded, when that recipient had acknowledged
    already (a repeated click or message)."""
    incident = find_incident(conn, row.incident_id, for_update=True)
    n = notifications.c
    changed = conn.execute(
        update(notifications)
        .where(
            n.incident_id == row.incident_id,
            n.recipient_kind == row.recipient_kind,
            n.recipient_id == row.recipient_id,
            n.acked_at.is_(None),
        )
        .values(acked_at=now, acked_by=actor)
    )
    if changed.rowcount == 0:
        return None
    # A neighbour's "seen" goes on the timeline; only a responder with a deadline (still
    # running: not lifted by a close or a cancel) acknowledges the incident.
    takes = incident is not None and incident.acked_at is None and row.ack_required
    append(
        conn,
        TimelineEntry(
            incident_id=row.incident_id,
            at=now,
            actor=actor,
            role=row.target,
            action=Action.ACKNOWLEDGE,
            note=f"{row.named}{note_suffix}",
            data={
                "notification_id": row.id,
                **(data or {}),
                **({"incident_acknowledged": True} if takes else {}),
            },
        ),
    )
    if not takes:
        return Recorded.RECIPIENT
    assert incident is not None
    take(
        conn,
        incident,
        actor=actor,
        recipient=row.recipient,
        routing=routing,
        grid=grid,
        now=now,
        written=written,
    )
    written.touched(incident)
    return Recorded.TOOK_INCIDENT
