"""Taking an incident (确认接警): its first acknowledgement by a responder with authority over
it stops its escalation ladder.

A responder with authority is a recipient the gateway asked to acknowledge (a police desk,
grid worker, community console, … with a deadline; not the neighbours, who are only told),
or a staff member acting on the incident itself (``POST /api/incidents/{id}/actions``
``acknowledge``; the API admits only accounts with ``incidents:write`` whose scope holds the
incident — residents are told, they do not acknowledge).

Taking it, in the acknowledgement's transaction:

- the incident's ``acked_at``/``acked_by`` are set (the figures' time to acknowledge);
- every recipient's deadline not met yet is settled (``outbox.lift_deadlines``), so nothing
  escalates, and what is sent about the incident later asks no acknowledgement;
- everyone already told (every channel that reached them) gets an ``acknowledged`` notice,
  except the recipient who acknowledged.

A repeated acknowledgement of the incident records nothing and says so (``DUPLICATE``);
recipients' own acknowledgements are still recorded afterwards, for the figures.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, update

from gateway.grid.directory import GridDirectory
from gateway.incidents import outbox
from gateway.incidents.lifecycle import Action
from gateway.incidents.records import (
    AckOutcome,
    ActionInput,
    IncidentAck,
    IncidentRecord,
    Written,
)
from gateway.incidents.reports import check_attachments
from gateway.incidents.rows import load_incident, update_incident
from gateway.incidents.timeline import TimelineEntry, append
from gateway.notify.tables import notifications
from gateway.routing.model import RoutingConfig
from gateway.storage.times import utc

OCCASION = "acknowledged"


def take(
    conn: Connection,
    incident: IncidentRecord,
    *,
    actor: str,
    recipient: str | None,
    routing: RoutingConfig,
    grid: GridDirectory,
    now: datetime,
    written: Written,
) -> None:
    """Mark the incident taken by ``actor``, settle every deadline and tell those already
    told (``recipient``, the one who acknowledged, is not told)."""
    update_incident(conn, incident, acked_at=now, acked_by=actor, updated_at=now)
    outbox.lift_deadlines(conn, incident.id)
    outbox.queue(
        conn,
        routing=routing,
        incident=incident,
        loc=incident.located_on(grid),
        deliveries=outbox.already_told(conn, incident.id, occasion=OCCASION, besides=recipient),
        occasion=outbox.Occasion(name=OCCASION, now=now),
        written=written,
    )


def acknowledge_incident(
    conn: Connection,
    *,
    incident_id: int,
    request: ActionInput,
    routing: RoutingConfig,
    grid: GridDirectory,
    now: datetime,
) -> tuple[IncidentAck, Written]:
    """确认接警 on the incident: take it, unless it was taken before (then nothing is
    recorded). A person who was notified has their own notifications acknowledged too."""
    written = Written()
    incident = load_incident(conn, incident_id, for_update=True)
    if incident.acked_at is not None:
        return IncidentAck(
            AckOutcome.DUPLICATE,
            incident_id,
            incident.current_stage,
            utc(incident.acked_at),
            incident.acked_by or "",
        ), written
    check_attachments(conn, incident_id, request.attachments)
    append(
        conn,
        TimelineEntry(
            incident_id=incident_id,
            at=now,
            actor=request.actor,
            role=request.role,
            action=Action.ACKNOWLEDGE,
            before=incident.current_stage,
            note=request.note,
            attachments=request.attachments,
            data={"incident_acknowledged": True},
        ),
    )
    as_recipient = f"person/{request.actor}"
    n = notifications.c
    conn.execute(
        update(notifications)
        .where(
            n.incident_id == incident_id,
            n.recipient_kind == "person",
            n.recipient_id == request.actor,
            n.acked_at.is_(None),
        )
        .values(acked_at=now, acked_by=request.actor)
    )
    take(
        conn,
        incident,
        actor=request.actor,
        recipient=as_recipient,
        routing=routing,
        grid=grid,
        now=now,
        written=written,
    )
    written.stage = incident.current_stage
    return IncidentAck(
        AckOutcome.RECORDED, incident_id, incident.current_stage, now, request.actor
    ), written.touched(incident)
