"""Reading and writing ``incidents`` rows as ``IncidentRecord`` (inside the caller's
transaction)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from gateway.incidents.records import IncidentDraft, IncidentNotFound, IncidentRecord
from gateway.incidents.tables import OPEN_GROUP, OPEN_GROUP_WHERE, incidents


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


def insert_unless_grouped(conn: Connection, draft: IncidentDraft) -> IncidentRecord | None:
    """Insert a rule incident, or None when an open incident of its group exists already
    (committed by another gateway since we looked): ``INSERT … ON CONFLICT DO NOTHING`` on
    the open-group index, which waits for a concurrent insert of the group to commit or
    roll back first."""
    conflict: dict[str, Any] = {
        "index_elements": list(OPEN_GROUP),
        "index_where": OPEN_GROUP_WHERE,
    }
    values = draft.columns()
    stmt: postgresql.Insert | sqlite.Insert
    if conn.dialect.name == "postgresql":
        stmt = postgresql.insert(incidents).values(**values).on_conflict_do_nothing(**conflict)
    elif conn.dialect.name == "sqlite":
        stmt = sqlite.insert(incidents).values(**values).on_conflict_do_nothing(**conflict)
    else:  # another database: its unique violation surfaces as an error
        return insert_incident(conn, draft)
    new_id = conn.execute(stmt.returning(incidents.c.id)).scalar()
    return None if new_id is None else IncidentRecord.from_draft(int(new_id), draft)


def update_incident(conn: Connection, incident: IncidentRecord, **values: Any) -> None:
    """Write ``values`` to the incident's row and to the record."""
    conn.execute(update(incidents).where(incidents.c.id == incident.id).values(**values))
    incident.apply(values)
