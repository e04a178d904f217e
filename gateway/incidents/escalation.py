"""Escalation: an acknowledgement deadline passed while the incident is open and nobody
has taken it (``taking``), so the next rung of ``escalation.ladder`` is told (a rung with
nobody is skipped), with its own deadline, and an ``escalate`` timeline entry says who did
not acknowledge and who is told.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, select, update

from gateway.grid.directory import GridDirectory
from gateway.incidents import outbox
from gateway.incidents.lifecycle import OPEN_STAGES, Action
from gateway.incidents.records import SYSTEM, IncidentRecord, NotificationRecord, Written
from gateway.incidents.rows import find_incident
from gateway.incidents.timeline import TimelineEntry, append
from gateway.notify.tables import notifications
from gateway.routing.model import RoutingConfig, Target
from gateway.routing.planner import Delivery, escalation_plan


def store_escalations(
    conn: Connection,
    *,
    notification_ids: Sequence[int],
    routing: RoutingConfig,
    grid: GridDirectory,
    now: datetime,
) -> Written:
    """Escalate each notification whose deadline passed, unless it no longer counts."""
    written = Written()
    n = notifications.c
    for nid in notification_ids:
        found = conn.execute(select(notifications).where(n.id == nid)).first()
        if found is None:
            continue
        row = NotificationRecord.from_row(found)
        if row.acked_at is not None or row.escalated_at is not None or not row.ack_required:
            continue
        incident = find_incident(conn, row.incident_id, for_update=True)
        if (
            incident is None
            or incident.current_stage not in OPEN_STAGES
            or incident.acked_at is not None  # taken: its ladder stopped (``taking``)
        ):
            # Nobody is waited for any more: lift the row's deadline, so that a sweep for
            # passed deadlines (``notify.claims``) does not find it again.
            conn.execute(update(notifications).where(n.id == nid).values(ack_required=False))
            continue
        claimed = conn.execute(
            update(notifications)
            .where(
                n.id == nid,
                n.escalated_at.is_(None),
                n.acked_at.is_(None),
                n.ack_required.is_(True),
            )
            .values(escalated_at=now)
        )
        if claimed.rowcount == 0:  # another gateway on the database escalated it first
            continue
        loc = incident.located_on(grid)
        deliveries = escalation_plan(routing, grid, Target(row.target), loc)
        append(conn, _escalate_entry(incident, row, deliveries, now))
        outbox.queue(
            conn,
            routing=routing,
            incident=incident,
            loc=loc,
            deliveries=deliveries,
            occasion=outbox.Occasion(name="escalation", now=now, level=row.level + 1),
            written=written,
        )
        written.touched(incident)
    return written


def _escalate_entry(
    incident: IncidentRecord,
    row: NotificationRecord,
    deliveries: Sequence[Delivery],
    now: datetime,
) -> TimelineEntry:
    told = sorted({f"{d.recipient.name} ({d.recipient.key})" for d in deliveries})
    onward = f"escalated to {', '.join(told)}" if told else "no one above on the ladder"
    return TimelineEntry(
        incident_id=incident.id,
        at=now,
        actor=SYSTEM,
        role="escalation",
        action=Action.ESCALATE,
        note=f"{row.named} did not acknowledge by {outbox.iso(row.ack_deadline)}; {onward}",
        data={
            "notification_id": row.id,
            "from": row.target,
            "to": [d.recipient.key for d in deliveries],
            "level": row.level + 1,
        },
    )
