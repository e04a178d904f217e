"""Manual reports and residents' 随手报: an incident opened by a person, its ``open``
timeline entry and its notifications. Photos are uploaded after it (``attach``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, select

from gateway.grid.directory import GridDirectory, Location
from gateway.incidents import outbox
from gateway.incidents.lifecycle import Action, IllegalTransition, Stage
from gateway.incidents.records import IncidentDraft, Report, Written
from gateway.incidents.rows import insert_incident
from gateway.incidents.tables import incident_attachments
from gateway.incidents.timeline import TimelineEntry, append
from gateway.routing.model import RoutingConfig
from gateway.routing.planner import Delivery, plan
from gateway.routing.tree import RouteInput


def plan_report(
    report: Report, routing: RoutingConfig, grid: GridDirectory
) -> tuple[Location, list[Delivery]]:
    """Where the report is on the grid and whom to tell (in memory: no query)."""
    loc = grid.locate(
        site=report.site,
        device_id=report.device_id,
        place=report.place,
        household=report.household,
        cell=report.cell,
    )
    route = RouteInput(
        category=report.category.value,
        severity=report.severity.value,
        source=report.source.value,
        cell=loc.cell,
        community=loc.community,
        site=loc.site,
        rule_id=None,
        labels={},
    )
    return loc, plan(routing, grid, route, loc)


def store_report(
    conn: Connection,
    *,
    report: Report,
    loc: Location,
    deliveries: list[Delivery],
    routing: RoutingConfig,
    now: datetime,
) -> Written:
    written = Written()
    incident = insert_incident(
        conn,
        IncidentDraft(
            source=report.source,
            category=report.category.value,
            severity=report.severity.value,
            title_zh=report.title_zh,
            title_en=report.title_en,
            description=report.description,
            site=loc.site,
            cell=loc.cell,
            community=loc.community,
            place=loc.place,
            device_id=report.device_id,
            household=loc.household,
            location=report.location,
            reporter=report.reporter or None,
            opened_at=now,
        ),
    )
    check_attachments(conn, incident.id, report.attachments)
    append(
        conn,
        TimelineEntry(
            incident_id=incident.id,
            at=now,
            actor=report.reporter or "anonymous",
            role=report.role,
            action=Action.OPEN,
            after=Stage.DISCOVERED,
            note=report.description,
            attachments=report.attachments,
            data={"source": report.source.value, "location": report.location},
        ),
    )
    outbox.queue(
        conn,
        routing=routing,
        incident=incident,
        loc=loc,
        deliveries=deliveries,
        occasion=outbox.Occasion(name="new", now=now),
        written=written,
    )
    return written.touched(incident, created=True)


def check_attachments(conn: Connection, incident_id: int, ids: Sequence[str]) -> None:
    """Attachments named by an action or a report must belong to the incident."""
    if not ids:
        return
    rows = conn.execute(
        select(incident_attachments.c.id, incident_attachments.c.incident_id).where(
            incident_attachments.c.id.in_(list(ids))
        )
    ).all()
    owner = {r.id: r.incident_id for r in rows}
    for a in ids:
        if a not in owner:
            raise IllegalTransition(Action.ATTACH, Stage.DISCOVERED, f"no attachment {a!r}")
        if owner[a] != incident_id:
            raise IllegalTransition(
                Action.ATTACH,
                Stage.DISCOVERED,
                f"attachment {a!r} belongs to incident {owner[a]}",
            )
