"""Queueing notifications: one outbox row per (recipient, channel), committed with the
incident's change and handed to the dispatcher afterwards (``Written.rows``).

A recipient asked to acknowledge (the first channel of a responder) gets a deadline from
``escalation.ack_deadline`` for the incident's severity, counted from when the notification
is due; the dispatcher watches it (``Written.deadlines``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from gateway.grid.directory import Location
from gateway.incidents.categories import Severity
from gateway.incidents.lifecycle import Action
from gateway.incidents.records import SYSTEM, IncidentRecord, Written
from gateway.incidents.rows import update_incident
from gateway.incidents.timeline import TimelineEntry, append
from gateway.notify.dispatcher import Outgoing
from gateway.notify.tables import notifications
from gateway.routing.model import RoutingConfig, Target
from gateway.routing.planner import Delivery
from gateway.routing.targets import Recipient
from gateway.storage.times import utc

PAYLOAD_EVENT_IDS = 10  # the newest event ids a notification names


def iso(value: datetime | None) -> str | None:
    """``2026-05-12T02:00:00Z``, as payloads and notes write times."""
    if value is None:
        return None
    return utc(value).isoformat().replace("+00:00", "Z")


def payload(incident: IncidentRecord, occasion: str, loc: Location) -> dict[str, Any]:
    """What every notification of the incident says (the recipient's part is added); once
    it is acknowledged, ``acknowledged`` says when and by whom."""
    body = {
        "v": 1,
        "occasion": occasion,
        "incident_id": incident.id,
        "category": incident.category,
        "severity": incident.severity,
        "title_zh": incident.title_zh,
        "title_en": incident.title_en,
        "stage": incident.stage,
        "site": incident.site,
        "cell": incident.cell,
        "place": incident.place,
        "device_id": incident.device_id,
        "household": incident.household,
        "address": loc.address or None,
        "event_ids": list(incident.event_ids or [])[-PAYLOAD_EVENT_IDS:],
        "opened_at": iso(incident.opened_at),
    }
    if incident.acked_at is not None:
        body["acknowledged"] = {"at": iso(incident.acked_at), "by": incident.acked_by}
    return body


@dataclass(frozen=True, slots=True, kw_only=True)
class Occasion:
    """Why notifications are queued: ``new``, ``reminder``, ``escalation``, ``dispatch``,
    ``cancel``, ``acknowledged`` (the incident is taken); ``level`` is the escalation
    rung."""

    name: str
    now: datetime
    level: int = 0


def queue(
    conn: Connection,
    *,
    routing: RoutingConfig,
    incident: IncidentRecord,
    loc: Location,
    deliveries: Sequence[Delivery],
    occasion: Occasion,
    written: Written,
) -> None:
    """Insert the outbox rows, remember them in ``written`` for sending, note the time on
    the incident and add a ``notify`` timeline entry. An acknowledged incident asks nobody
    to acknowledge: what is sent about it informs."""
    if not deliveries:
        return
    deadline_s = routing.escalation.ack_deadline.get(Severity(incident.severity))
    if incident.acked_at is not None:
        deadline_s = None
    base = payload(incident, occasion.name, loc)
    rows = [_row(incident, d, occasion, base, deadline_s) for d in deliveries]
    # One batched INSERT … RETURNING for every row (ids in parameter order).
    result = conn.execute(
        insert(notifications).returning(notifications.c.id, sort_by_parameter_order=True), rows
    )
    for row, nid in zip(rows, result.scalars().all(), strict=True):
        written.rows.append(
            Outgoing(
                int(nid),
                incident.id,
                row["channel"],
                row["recipient_kind"],
                row["recipient_id"],
                row["recipient_name"],
                row["payload"],
                row["next_attempt_at"],
                place=incident.console_place,
            )
        )
        if row["ack_deadline"] is not None:
            written.deadlines.append((row["ack_deadline"], int(nid)))
    update_incident(conn, incident, last_notified_at=occasion.now)
    append(
        conn,
        TimelineEntry(
            incident_id=incident.id,
            at=occasion.now,
            actor=SYSTEM,
            role="routing",
            action=Action.NOTIFY,
            note=", ".join(sorted({f"{d.recipient.name} ({d.receiver})" for d in deliveries})),
            data={
                "occasion": occasion.name,
                "recipients": sorted({d.recipient.key for d in deliveries}),
            },
        ),
    )


def _row(
    incident: IncidentRecord,
    d: Delivery,
    occasion: Occasion,
    base: dict[str, Any],
    deadline_s: float | None,
) -> dict[str, Any]:
    """The outbox row's values for one delivery (``base``: the incident's payload)."""
    due = occasion.now + timedelta(seconds=d.group_wait)
    ack_deadline = (
        due + timedelta(seconds=deadline_s) if d.ack_required and deadline_s is not None else None
    )
    return {
        "incident_id": incident.id,
        "occasion": occasion.name,
        "route": d.route,
        "receiver": d.receiver,
        "target": d.recipient.target.value,
        "recipient_kind": d.recipient.kind,
        "recipient_id": d.recipient.id,
        "recipient_name": d.recipient.name,
        "channel": d.channel,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": due,
        "created_at": occasion.now,
        "ack_required": ack_deadline is not None,
        "ack_deadline": ack_deadline,
        "level": occasion.level,
        "payload": {
            **base,
            "receiver": d.receiver,
            "target": d.recipient.target.value,
            "recipient": {
                "kind": d.recipient.kind,
                "id": d.recipient.id,
                "name": d.recipient.name,
            },
            "ack_required": ack_deadline is not None,
            "ack_deadline": iso(ack_deadline),
        },
    }


def stop_notifications(conn: Connection, incident_id: int) -> None:
    """Cancel what is not sent yet and lift every open acknowledgement deadline (a closed
    incident or a cancelled panic)."""
    n = notifications.c
    conn.execute(
        update(notifications)
        .where(n.incident_id == incident_id, n.status.in_(("pending", "retry")))
        .values(status="cancelled", next_attempt_at=None)
    )
    lift_deadlines(conn, incident_id)


def lift_deadlines(conn: Connection, incident_id: int) -> int:
    """Nobody is waited for any more: every deadline not met by an acknowledgement stops
    counting (``ack_required`` false; ``ack_deadline`` stays, for the record). The number
    of rows lifted."""
    n = notifications.c
    result = conn.execute(
        update(notifications)
        .where(n.incident_id == incident_id, n.ack_required.is_(True), n.acked_at.is_(None))
        .values(ack_required=False)
    )
    return int(result.rowcount)


def already_told(
    conn: Connection, incident_id: int, *, occasion: str, besides: str | None = None
) -> list[Delivery]:
    """A notice for everyone already told of the incident, on each channel that reached
    them (notices of this ``occasion`` do not count as telling); ``besides``: a recipient
    (``kind/id``) left out."""
    n = notifications.c
    rows = conn.execute(
        select(n.recipient_kind, n.recipient_id, n.recipient_name, n.target, n.channel)
        .where(n.incident_id == incident_id, n.status == "sent", n.occasion != occasion)
        .distinct()
    ).all()
    return [
        Delivery(
            route=occasion,
            receiver=occasion,
            recipient=Recipient(
                r.recipient_kind, r.recipient_id, r.recipient_name, Target(r.target)
            ),
            channel=r.channel,
            ack_required=False,
            group_wait=0.0,
            repeat_interval=0.0,
        )
        for r in rows
        if f"{r.recipient_kind}/{r.recipient_id}" != besides
    ]
