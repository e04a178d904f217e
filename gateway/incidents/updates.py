"""Later updates of a stored signal: events attached, ``resolved`` or ``cancelled`` recorded.

Never a stage change (people decide). A ``cancelled`` panic (cancelled within its grace
period) lowers the severity, stops what is not sent yet and every acknowledgement deadline,
and sends a ``cancel`` notice to everyone already told.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from gateway.grid.directory import GridDirectory
from gateway.incidents import outbox
from gateway.incidents.records import MAX_EVENT_IDS, IncidentRecord, Stored, Written
from gateway.incidents.rows import update_incident
from gateway.incidents.signal_queue import Queued
from gateway.incidents.tables import incident_signals, incidents
from gateway.incidents.timeline import append, signal_update_entry
from gateway.routing.model import RoutingConfig
from rules.signal import Signal

LOOKUP_CHUNK = 500  # signal ids per look-up (bound parameters stay few)


def store_updates(
    conn: Connection,
    *,
    items: Sequence[Queued],
    routing: RoutingConfig,
    grid: GridDirectory,
) -> list[Written]:
    """One ``Written`` per item, in order."""
    if any(item.signal.state == "cancelled" for item in items):
        # Rare, and it reads and queues notifications: one at a time.
        return [
            apply_update(conn, signal=item.signal, now=item.at, routing=routing, grid=grid)
            for item in items
        ]
    return apply_updates(conn, items)


def updated_values(
    incident: IncidentRecord, signal: Signal, event_ids: list[str], now: datetime
) -> dict[str, Any]:
    """An incident's columns after a later update of its signal (events attached, state)."""
    return {
        "event_ids": (list(incident.event_ids or []) + event_ids)[-MAX_EVENT_IDS:],
        "event_count": max(incident.event_count, signal.event_count),
        "signal_state": signal.state,
        "updated_at": now,
    }


def apply_updates(conn: Connection, items: Sequence[Queued]) -> list[Written]:
    """``apply_update`` for many signals (none cancelled) in a few statements: one select
    of their incidents, one update per incident touched, one timeline insert.

    A perimeter storm sends hundreds of updates a second; per update, three statements'
    worth of SQLAlchemy work made the incident thread one of the gateway's busiest."""
    found = _incidents_of(conn, list({item.signal.signal_id for item in items}))
    current: dict[int, IncidentRecord] = {}  # incident id → its state after each update
    entries = []
    out: list[Written] = []
    for item in items:
        signal, written = item.signal, Written()
        record = found.get(signal.signal_id)
        if record is None:
            written.stored = Stored.IGNORED
            out.append(written)
            continue
        incident = current.setdefault(record.id, record)
        event_ids = [e.event_id for e in signal.events]
        incident.apply(updated_values(incident, signal, event_ids, item.at))
        entries.append(signal_update_entry(incident.id, item.at, signal, event_ids))
        written.stored = Stored.UPDATED
        out.append(written.touched(incident))
    if current:
        conn.execute(
            update(incidents)
            .where(incidents.c.id == bindparam("b_id"))
            .values(
                event_ids=bindparam("b_event_ids"),
                event_count=bindparam("b_event_count"),
                signal_state=bindparam("b_signal_state"),
                updated_at=bindparam("b_updated_at"),
            ),
            [
                {
                    "b_id": inc.id,
                    "b_event_ids": inc.event_ids,
                    "b_event_count": inc.event_count,
                    "b_signal_state": inc.signal_state,
                    "b_updated_at": inc.updated_at,
                }
                for inc in current.values()
            ],
        )
    append(conn, *entries)
    return out


def _incidents_of(conn: Connection, signal_ids: list[str]) -> dict[str, IncidentRecord]:
    """signal id → the incident it went to (signals never stored are left out)."""
    found: dict[str, IncidentRecord] = {}
    for start in range(0, len(signal_ids), LOOKUP_CHUNK):
        chunk = signal_ids[start : start + LOOKUP_CHUNK]
        for row in conn.execute(
            select(incidents, incident_signals.c.signal_id.label("signal_id_"))
            .join(incident_signals, incident_signals.c.incident_id == incidents.c.id)
            .where(incident_signals.c.signal_id.in_(chunk))
        ):
            found[row.signal_id_] = IncidentRecord.from_row(row)
    return found


def apply_update(
    conn: Connection,
    *,
    signal: Signal,
    now: datetime,
    routing: RoutingConfig,
    grid: GridDirectory,
) -> Written:
    """One later update, ``cancelled`` included."""
    written = Written()
    found = _incidents_of(conn, [signal.signal_id]).get(signal.signal_id)
    if found is None:
        written.stored = Stored.IGNORED
        return written
    event_ids = [e.event_id for e in signal.events]
    values = updated_values(found, signal, event_ids, now)
    if signal.state == "cancelled":
        values["severity"] = signal.severity.value
    update_incident(conn, found, **values)
    append(conn, signal_update_entry(found.id, now, signal, event_ids))
    if signal.state == "cancelled":
        outbox.stop_notifications(conn, found.id)
        outbox.queue(
            conn,
            routing=routing,
            incident=found,
            loc=found.located_on(grid),
            deliveries=outbox.already_told(conn, found.id, occasion="cancel"),
            occasion=outbox.Occasion(name="cancel", now=now),
            written=written,
        )
    written.stored = Stored.UPDATED
    return written.touched(found)
