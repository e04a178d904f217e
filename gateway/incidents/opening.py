"""A new rule signal: recognise a redelivery, join the open incident of its group, or open
an incident; then queue its notifications. One transaction (the caller's).

Two gateways on one database may both find no open incident of a group and both try to open
one: the database keeps exactly one (``grouping``), and the other's signal joins it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, select

from gateway.grid.directory import GridDirectory, Location
from gateway.incidents import grouping, outbox
from gateway.incidents.categories import Source
from gateway.incidents.lifecycle import Action, Stage
from gateway.incidents.records import (
    MAX_EVENT_IDS,
    SYSTEM,
    IncidentDraft,
    IncidentRecord,
    Stored,
    Written,
)
from gateway.incidents.rows import insert_unless_grouped
from gateway.incidents.tables import incident_signals
from gateway.incidents.timeline import TimelineEntry, append
from gateway.routing.model import RoutingConfig
from gateway.routing.planner import Delivery, plan
from gateway.routing.tree import RouteInput
from rules.signal import Signal


def plan_signal(
    signal: Signal, routing: RoutingConfig, grid: GridDirectory
) -> tuple[Location, list[Delivery]]:
    """Where the signal is on the grid and whom to tell (in memory: no query)."""
    loc = grid.locate(
        site=signal.site,
        device_id=signal.device_id,
        household=signal.labels.get("device.household"),
    )
    route = RouteInput(
        category=signal.category.value,
        severity=signal.severity.value,
        source=Source.RULE.value,
        cell=loc.cell,
        community=loc.community,
        site=loc.site,
        rule_id=signal.rule_id,
        labels=signal.labels,
    )
    return loc, plan(routing, grid, route, loc)


def store_signal(
    conn: Connection,
    *,
    signal: Signal,
    loc: Location,
    deliveries: list[Delivery],
    routing: RoutingConfig,
    now: datetime,
) -> Written:
    written = Written()
    if already_stored(conn, signal.signal_id):  # redelivered after a restart
        written.stored = Stored.IGNORED
        return written
    key = grouping.GroupKey(signal.rule_id, signal.group_key, loc.site or signal.site)
    while True:  # again only if another gateway opened the group and closed it meanwhile
        joined = grouping.find_open(conn, key)
        if joined is not None:
            return join(
                conn,
                joined,
                signal=signal,
                loc=loc,
                deliveries=deliveries,
                routing=routing,
                now=now,
                written=written,
            )
        opened = open_incident(conn, signal=signal, loc=loc, now=now)
        if opened is not None:
            break
    outbox.queue(
        conn,
        routing=routing,
        incident=opened,
        loc=loc,
        deliveries=deliveries,
        occasion=outbox.Occasion(name="new", now=now),
        written=written,
    )
    written.stored = Stored.OPENED
    return written.touched(opened, created=True)


def join(
    conn: Connection,
    incident: IncidentRecord,
    *,
    signal: Signal,
    loc: Location,
    deliveries: list[Delivery],
    routing: RoutingConfig,
    now: datetime,
    written: Written,
) -> Written:
    """The signal joins the open incident of its group; receivers are reminded if due."""
    last_notified_at = incident.last_notified_at
    grouping.join(conn, incident, signal, now)
    if grouping.reminder_due(last_notified_at, deliveries, now):
        outbox.queue(
            conn,
            routing=routing,
            incident=incident,
            loc=loc,
            deliveries=deliveries,
            occasion=outbox.Occasion(name="reminder", now=now),
            written=written,
        )
    written.stored = Stored.GROUPED
    return written.touched(incident)


def already_stored(conn: Connection, signal_id: str) -> bool:
    return conn.execute(_ALREADY_STORED, {"signal_id_": signal_id}).first() is not None


_ALREADY_STORED = select(incident_signals.c.incident_id).where(
    incident_signals.c.signal_id == bindparam("signal_id_")
)


def open_incident(
    conn: Connection, *, signal: Signal, loc: Location, now: datetime
) -> IncidentRecord | None:
    """Insert the incident of a new signal with its ``open`` timeline entry; None when an
    open incident of its group was committed meanwhile (by another gateway)."""
    event_ids = [e.event_id for e in signal.events]
    incident = insert_unless_grouped(
        conn,
        IncidentDraft(
            source=Source.RULE,
            category=signal.category.value,
            severity=signal.severity.value,
            title_zh=signal.title_zh,
            title_en=signal.title_en,
            description=signal.explanation,
            site=loc.site or signal.site,
            cell=loc.cell,
            community=loc.community,
            place=loc.place,
            device_id=signal.device_id,
            household=loc.household,
            opened_at=now,
            rule_id=signal.rule_id,
            group_key=signal.group_key,
            signal_state=signal.state,
            labels=dict(signal.labels),
            event_ids=event_ids[-MAX_EVENT_IDS:],
            event_count=signal.event_count,
            signal_count=1,
        ),
    )
    if incident is None:
        return None
    grouping.record_signal(conn, signal, incident.id, now)
    append(
        conn,
        TimelineEntry(
            incident_id=incident.id,
            at=now,
            actor=SYSTEM,
            role="rules",
            action=Action.OPEN,
            after=Stage.DISCOVERED,
            note=signal.explanation,
            data={
                "signal_id": signal.signal_id,
                "rule_id": signal.rule_id,
                "events": event_ids,
                "fired_at": outbox.iso(signal.fired_at),
            },
        ),
    )
    return incident
