"""Read queries for incidents (blocking; the API runs them in a worker thread)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, select

from gateway.incidents.stats import Entry, IncidentRow
from gateway.incidents.tables import incident_attachments, incident_timeline, incidents
from gateway.notify.tables import notifications
from gateway.storage.cursor import encode_cursor
from gateway.storage.times import utc

INCIDENTS_LISTING = "incidents"


@dataclass(frozen=True, slots=True)
class IncidentFilter:
    stages: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    severities: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    cells: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    restrict: ColumnElement[bool] | None = None  # the caller's scope (gateway.auth.guards)


def _public(m: Any) -> dict[str, Any]:
    d = dict(m)
    for k in ("opened_at", "updated_at", "acked_at", "closed_at", "last_notified_at"):
        if d.get(k) is not None:
            d[k] = utc(d[k])
    return d


def list_incidents(
    engine: Engine, f: IncidentFilter, limit: int, after: int | None
) -> tuple[list[dict[str, Any]], str | None]:
    c = incidents.c
    stmt = select(incidents)
    for col, values in (
        (c.stage, f.stages),
        (c.category, f.categories),
        (c.severity, f.severities),
        (c.source, f.sources),
        (c.cell, f.cells),
        (c.site, f.sites),
    ):
        if values:
            stmt = stmt.where(col.in_(values))
    if f.since is not None:
        stmt = stmt.where(c.opened_at >= utc(f.since))
    if f.until is not None:
        stmt = stmt.where(c.opened_at < utc(f.until))
    if f.restrict is not None:
        stmt = stmt.where(f.restrict)
    if after is not None:
        stmt = stmt.where(c.id < after)
    stmt = stmt.order_by(c.id.desc()).limit(limit + 1)
    with engine.connect() as conn:
        rows = [_public(r._mapping) for r in conn.execute(stmt)]
    cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        cursor = encode_cursor(INCIDENTS_LISTING, int(rows[-1]["id"]))
    return rows, cursor


def get_incident(engine: Engine, incident_id: int) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()
        if row is None:
            return None
        out = _public(row._mapping)
        out["timeline"] = [
            {**dict(r._mapping), "at": utc(r.at)}
            for r in conn.execute(
                select(incident_timeline)
                .where(incident_timeline.c.incident_id == incident_id)
                .order_by(incident_timeline.c.id)
            )
        ]
        out["attachments"] = [
            {**dict(r._mapping), "uploaded_at": utc(r.uploaded_at)}
            for r in conn.execute(
                select(incident_attachments)
                .where(incident_attachments.c.incident_id == incident_id)
                .order_by(incident_attachments.c.uploaded_at)
            )
        ]
        out["deliveries"] = [
            {
                k: (utc(v) if isinstance(v, datetime) else v)
                for k, v in r._mapping.items()
                if k != "payload"
            }
            for r in conn.execute(
                select(notifications)
                .where(notifications.c.incident_id == incident_id)
                .order_by(notifications.c.id)
            )
        ]
    return out


def get_attachment(engine: Engine, incident_id: int, attachment_id: str) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(
            select(incident_attachments).where(
                incident_attachments.c.id == attachment_id,
                incident_attachments.c.incident_id == incident_id,
            )
        ).first()
    return None if row is None else dict(row._mapping)


def load_period(
    engine: Engine,
    since: datetime,
    until: datetime,
    restrict: ColumnElement[bool] | None = None,
) -> tuple[list[IncidentRow], list[Entry]]:
    """Incidents opened in [since, until) and all their timeline entries; ``restrict`` is
    the caller's scope (``gateway.auth.guards.incident_scope``)."""
    c = incidents.c
    stmt = select(c.id, c.category, c.source, c.community, c.cell, c.opened_at).where(
        c.opened_at >= utc(since), c.opened_at < utc(until)
    )
    if restrict is not None:
        stmt = stmt.where(restrict)
    with engine.connect() as conn:
        rows = [
            IncidentRow(r.id, r.category, r.source, r.community, r.cell, utc(r.opened_at))
            for r in conn.execute(stmt)
        ]
        ids = [r.id for r in rows]
        entries: list[Entry] = []
        t = incident_timeline.c
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            entries += [
                Entry(r.incident_id, utc(r.at), r.actor, r.action, r.to_stage, r.data or {})
                for r in conn.execute(
                    select(t.incident_id, t.at, t.actor, t.action, t.to_stage, t.data).where(
                        t.incident_id.in_(chunk)
                    )
                )
            ]
    return rows, entries
