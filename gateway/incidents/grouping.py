"""Grouping: a new rule signal whose rule and group key match an open incident of the same
site joins it instead of opening another. The database holds at most one open incident per
group (a partial unique index, migration 0007): when two gateways open the same group at
once, the second insert yields and its signal joins the first's incident (``opening``).

Joining appends the signal's events, counts the signal, raises the severity if the signal's
is higher and records a ``signal`` timeline entry. Receivers are told again (a ``reminder``)
only once the route's ``repeat_interval`` has passed since they were last told.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, insert, select

from gateway.incidents.lifecycle import OPEN_STAGES, Action
from gateway.incidents.records import MAX_EVENT_IDS, SYSTEM, IncidentRecord
from gateway.incidents.rows import update_incident
from gateway.incidents.tables import OPEN_GROUP, incident_signals, incidents
from gateway.incidents.timeline import TimelineEntry, append
from gateway.routing.planner import Delivery
from gateway.storage.times import utc
from rules.signal import Signal

SEVERITY_RANK = {"P1": 1, "P2": 2, "P3": 3, "P4": 4}


def higher_severity(a: str, b: str) -> str:
    """The more urgent of two severities (P1 before P4)."""
    return min(a, b, key=lambda s: SEVERITY_RANK.get(s, 9))


@dataclass(frozen=True, slots=True)
class GroupKey:
    """What makes signals one incident: the rule, its group key, the incident's site (as
    stored: the signal's, or the one its device is placed at). At most one open incident
    per key, by constraint (``tables.OPEN_GROUP``), however many gateways share the
    database."""

    rule_id: str
    group_key: str
    site: str | None


def find_open(conn: Connection, key: GroupKey) -> IncidentRecord | None:
    """The open incident of the group, if any, locked until the transaction ends (another
    gateway joining it waits its turn, so no signal's counts are lost)."""
    params = {"rule_id_": key.rule_id, "group_key_": key.group_key, "site_": key.site or ""}
    row = conn.execute(_FIND_OPEN, params).first()
    return None if row is None else IncidentRecord.from_row(row)


# Built once, values bound at execution: on the alarm path (see rows.insert_unless_grouped).
_FIND_OPEN = (
    select(incidents)
    .where(
        incidents.c.rule_id == bindparam("rule_id_"),
        incidents.c.group_key == bindparam("group_key_"),
        OPEN_GROUP[2] == bindparam("site_"),
        incidents.c.stage.in_([s.value for s in OPEN_STAGES]),
    )
    .order_by(incidents.c.id.desc())
    .limit(1)
    .with_for_update()
)


def record_signal(conn: Connection, signal: Signal, incident_id: int, now: datetime) -> None:
    """Remember which incident a signal went to (a redelivery is then recognised)."""
    conn.execute(
        insert(incident_signals),
        [{"signal_id": signal.signal_id, "incident_id": incident_id, "received_at": now}],
    )


def join(conn: Connection, incident: IncidentRecord, signal: Signal, now: datetime) -> None:
    """Attach a new signal to the open incident of its group."""
    event_ids = [e.event_id for e in signal.events]
    update_incident(
        conn,
        incident,
        event_ids=(list(incident.event_ids or []) + event_ids)[-MAX_EVENT_IDS:],
        event_count=incident.event_count + signal.event_count,
        signal_count=incident.signal_count + 1,
        severity=higher_severity(incident.severity, signal.severity.value),
        signal_state=signal.state,
        updated_at=now,
    )
    record_signal(conn, signal, incident.id, now)
    append(
        conn,
        TimelineEntry(
            incident_id=incident.id,
            at=now,
            actor=SYSTEM,
            role="rules",
            action=Action.SIGNAL,
            note=signal.explanation,
            data={
                "signal_id": signal.signal_id,
                "grouped": True,
                "events": event_ids,
                "state": signal.state,
            },
        ),
    )


def reminder_due(
    last_notified_at: datetime | None, deliveries: Sequence[Delivery], now: datetime
) -> bool:
    """Whether a joined signal tells the receivers again: the shortest ``repeat_interval``
    of its routes has passed since they were last told."""
    if not deliveries:
        return False
    repeat = min(d.repeat_interval for d in deliveries)
    return last_notified_at is None or now - utc(last_notified_at) >= timedelta(seconds=repeat)
