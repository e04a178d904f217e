"""Reading and writing ``incidents`` rows as ``IncidentRecord`` (inside the caller's
transaction)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select, update

from gateway.incidents.records import IncidentDraft, IncidentNotFound, IncidentRecord
from gateway.incidents.tables import incidents


def find_incident(
    conn: Connection, incident_id: int, *, for_update: bool = False
) -> IncidentRecord | None:
    """The incident; ``for_update`` locks its row until the transaction ends (PostgreSQL:
    gateways sharing the database take turns on it; SQLite has one writer anyway)."""
    stmt = select(incidents).where(incidents.c.id == incident_id)
    row = conn.execute(stmt.with_for_update() if for_update else stmt).first()
    return None if row is None else IncidentRecord.from_row(row)


def load_incident(
    conn: Connection, incident_id: int, *, for_update: bool = False
) -> IncidentRecord:
    """The incident, or ``IncidentNotFound``."""
    found = find_incident(conn, incident_id, for_update=for_update)
    if found is None:
        raise IncidentNotFound(incident_id)
    return found


def insert_incident(conn: Connection, draft: IncidentDraft) -> IncidentRecord:
    result = conn.execute(insert(incidents).returning(incidents.c.id), [draft.columns()])
    return IncidentRecord.from_draft(int(result.scalar_one()), draft)


def update_incident(conn: Connection, incident: IncidentRecord, **values: Any) -> None:
    """Write ``values`` to the incident's row and to the record."""
    conn.execute(update(incidents).where(incidents.c.id == incident.id).values(**values))
    incident.apply(values)
