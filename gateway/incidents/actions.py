"""Workflow actions people take on an incident (dispatch, accept, feedback, verify, …) and
attached photos: the stage machine (``lifecycle``) decides, this module records.

A dispatch notifies the assignees on the escalation channels; closing stops what is not
sent yet and every acknowledgement deadline.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from gateway.grid.directory import GridDirectory
from gateway.incidents import grouping, outbox
from gateway.incidents.lifecycle import (
    CLOSED_STAGES,
    OPEN_STAGES,
    Action,
    IllegalTransition,
    Request,
    Stage,
    next_stage,
)
from gateway.incidents.records import ActionInput, IncidentRecord, Written
from gateway.incidents.reports import check_attachments
from gateway.incidents.rows import load_incident, update_incident
from gateway.incidents.tables import incident_attachments, incidents
from gateway.incidents.timeline import TimelineEntry, append
from gateway.routing.model import RoutingConfig, Target
from gateway.routing.planner import Delivery
from gateway.routing.targets import Recipient


def store_action(
    conn: Connection,
    *,
    incident_id: int,
    request: ActionInput,
    routing: RoutingConfig,
    grid: GridDirectory,
    now: datetime,
) -> Written:
    """Apply one action; ``IncidentNotFound`` or ``IllegalTransition`` roll it back. An
    acknowledgement is ``taking``'s."""
    assert request.action is not Action.ACKNOWLEDGE
    written = Written()
    incident = load_incident(conn, incident_id)
    before = incident.current_stage
    after = next_stage(
        before, request.action, Request(request.assignees, request.score, request.note)
    )
    check_attachments(conn, incident_id, request.attachments)
    if request.action is Action.REOPEN:
        _check_group_free(conn, incident, before)
    update_incident(conn, incident, **_changes(incident, request, before, after, now))
    moved = after is not before or request.action is Action.DISPATCH
    append(
        conn,
        TimelineEntry(
            incident_id=incident_id,
            at=now,
            actor=request.actor,
            role=request.role,
            action=request.action,
            before=before,
            after=after if moved else None,
            note=request.note,
            attachments=request.attachments,
            data={
                k: v
                for k, v in (("assignees", list(request.assignees)), ("score", request.score))
                if v
            },
        ),
    )
    if after in CLOSED_STAGES:
        outbox.stop_notifications(conn, incident_id)
    if request.action is Action.DISPATCH:
        outbox.queue(
            conn,
            routing=routing,
            incident=incident,
            loc=incident.located_on(grid),
            deliveries=dispatch_deliveries(incident.assignees, routing, grid),
            occasion=outbox.Occasion(name="dispatch", now=now),
            written=written,
        )
    written.stage = after
    return written.touched(incident)


def _check_group_free(conn: Connection, incident: IncidentRecord, stage: Stage) -> None:
    """A rule incident reopens only while no other incident is open for its group (one
    open incident per group: ``grouping``); its signals went to that one meanwhile."""
    if incident.rule_id is None or incident.group_key is None:
        return
    key = grouping.GroupKey(incident.rule_id, incident.group_key, incident.site)
    other = grouping.find_open(conn, key)
    if other is not None:
        raise IllegalTransition(
            Action.REOPEN,
            stage,
            f"incident {other.id} is open for the same alarm ({incident.rule_id}, "
            f"{incident.group_key}); continue there",
        )


def _changes(
    incident: IncidentRecord, request: ActionInput, before: Stage, after: Stage, now: datetime
) -> dict[str, Any]:
    """The incident's columns an action changes."""
    values: dict[str, Any] = {"stage": after.value, "updated_at": now}
    if request.action is Action.DISPATCH:
        values["assignees"] = list(dict.fromkeys(request.assignees))
    if request.action is Action.EVALUATE:
        values["score"], values["evaluation"] = request.score, request.note
    if after in CLOSED_STAGES and before in OPEN_STAGES:
        values["closed_at"] = now
    if request.action is Action.REOPEN:
        values.update(closed_at=None, score=None, evaluation=None)
    return values


def dispatch_deliveries(
    assignees: list[str], routing: RoutingConfig, grid: GridDirectory
) -> list[Delivery]:
    """Each assignee on every escalation channel, asked to acknowledge on the first."""
    channels = routing.escalation.channels
    deliveries = []
    for pid in assignees:
        person = grid.people.get(pid)
        recipient = Recipient("person", pid, person.name if person else pid, Target.GRID_WORKER)
        for channel in channels:
            deliveries.append(
                Delivery(
                    route="dispatch",
                    receiver="dispatch",
                    recipient=recipient,
                    channel=str(channel),
                    ack_required=channel is channels[0],
                    group_wait=0.0,
                    repeat_interval=0.0,
                )
            )
    return deliveries


def incident_exists(conn: Connection, incident_id: int) -> bool:
    found = conn.execute(select(incidents.c.id).where(incidents.c.id == incident_id)).first()
    return found is not None


def store_attachment(conn: Connection, *, row: dict[str, Any], role: str, note: str) -> None:
    """An uploaded image (already on disk) and its ``attach`` timeline entry."""
    conn.execute(insert(incident_attachments), [row])
    stage = conn.execute(
        select(incidents.c.stage).where(incidents.c.id == row["incident_id"])
    ).scalar_one()
    append(
        conn,
        TimelineEntry(
            incident_id=row["incident_id"],
            at=row["uploaded_at"],
            actor=row["uploaded_by"],
            role=role,
            action=Action.ATTACH,
            before=Stage(stage),
            note=note,
            attachments=[row["id"]],
            data={
                "filename": row["filename"],
                "content_type": row["content_type"],
                "size": row["size"],
            },
        ),
    )
