"""A new rule signal: recognise a redelivery, join the open incident of its group, or open
an incident; then queue its notifications. One transaction (the caller's)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select

from gateway.grid.directory import Location
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
from gateway.incidents.rows import insert_incident
from gateway.incidents.tables import incident_signals
from gateway.incidents.timeline import TimelineEntry, append
from gateway.routing.model import RoutingConfig
from gateway.routing.planner import Delivery
from rules.signal import Signal


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
    joined = grouping.find_open(conn, grouping.GroupKey.of(signal))
    if joined is not None:
        last_notified_at = joined.last_notified_at
        grouping.join(conn, joined, signal, now)
        if grouping.reminder_due(last_notified_at, deliveries, now):
            outbox.queue(
                conn,
                routing=routing,
                incident=joined,
                loc=loc,
                deliveries=deliveries,
                occasion=outbox.Occasion(name="reminder", now=now),
                written=written,
            )
        written.stored = Stored.GROUPED
        return written.touched(joined)
    opened = open_incident(conn, signal=signal, loc=loc, now=now)
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


def already_stored(conn: Connection, signal_id: str) -> bool:
    c = incident_signals.c
    return conn.execute(select(c.incident_id).where(c.signal_id == signal_id)).first() is not None


def open_incident(
    conn: Connection, *, signal: Signal, loc: Location, now: datetime
) -> IncidentRecord:
    """Insert the incident of a new signal with its ``open`` timeline entry."""
    event_ids = [e.event_id for e in signal.events]
    incident = insert_incident(
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
