"""Reading and writing ``incidents`` rows as ``IncidentRecord`` (inside the caller's
transaction)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, bindparam, insert, select, update
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
    stmt = _insert_unless_grouped(conn.dialect.name)
    if stmt is None:  # another database: its unique violation surfaces as an error
        return insert_incident(conn, draft)
    # The statement is built once and the values passed as parameters: a statement built
    # with its values inline costs a cache key over every column, on the alarm path.
    new_id = conn.execute(stmt, draft.columns()).scalar()
    return None if new_id is None else IncidentRecord.from_draft(int(new_id), draft)


@lru_cache(maxsize=4)
def _insert_unless_grouped(dialect: str) -> Any:
    conflict: dict[str, Any] = {
        "index_elements": list(OPEN_GROUP),
        "index_where": OPEN_GROUP_WHERE,
    }
    if dialect == "postgresql":
        ins: Any = postgresql.insert(incidents)
    elif dialect == "sqlite":
        ins = sqlite.insert(incidents)
    else:
        return None
    return ins.on_conflict_do_nothing(**conflict).returning(incidents.c.id)


def update_incident(conn: Connection, incident: IncidentRecord, **values: Any) -> None:
    """Write ``values`` to the incident's row and to the record."""
    # One statement for every update; the columns to SET come from the parameter names.
    conn.execute(_UPDATE_INCIDENT, {**values, "incident_id_": incident.id})
    incident.apply(values)


_UPDATE_INCIDENT = update(incidents).where(incidents.c.id == bindparam("incident_id_"))
