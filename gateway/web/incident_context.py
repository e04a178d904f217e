"""What the console shows beside an incident (the alarm desk's context): the household's
address and masked contacts, the neighbours notified, the nearest camera, the
acknowledgement deadline, whom a dispatcher may assign, and the incident's audit rows."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, Select, or_, select

from gateway.audit.tables import audit_log, target_is_or_under
from gateway.grid.directory import GridDirectory
from gateway.grid.model import Role
from gateway.grid.store import list_households
from gateway.incidents.categories import Severity
from gateway.web.context import WebContext


def people_names(grid: GridDirectory) -> dict[str, str]:
    return {p.id: p.name for p in grid.people.values()}


def nearest_camera(ctx: WebContext, inc: dict[str, Any]) -> str | None:
    """The camera that sees the incident's device, else one linked to a device in the same
    building, else the camera of a device anywhere up the place tree."""
    cams = ctx.camera_ids()
    if not cams:
        return None
    if inc.get("device_id"):
        found = ctx.snapshots_camera_for(inc["device_id"])
        if found:
            return found
    site = ctx.registry.sites.get(inc.get("site") or "")
    place = inc.get("place")
    if site is None:
        return next(iter(cams), None)
    parents = {p.id: p.parent for p in site.places}

    def ancestors(p: str | None) -> list[str]:
        out: list[str] = []
        while p is not None and p not in out:
            out.append(p)
            p = parents.get(p)
        return out

    mine = ancestors(place)
    best: tuple[int, str] | None = None
    for dev in site.devices:
        cam = dev.camera if dev.camera in cams else (dev.id if dev.id in cams else None)
        if cam is None:
            continue
        theirs = ancestors(dev.place)
        shared = next((i for i, p in enumerate(mine) if p in theirs), None)
        if shared is not None and (best is None or shared < best[0]):
            best = (shared, cam)
    return best[1] if best else next(iter(sorted(cams)), None)


def desk_context(ctx: WebContext, inc: dict[str, Any]) -> dict[str, Any]:
    """What the alarm desk shows beside an incident."""
    grid = ctx.grid
    loc = grid.locate(
        site=inc.get("site"),
        device_id=inc.get("device_id"),
        household=inc.get("household"),
        cell=inc.get("cell"),
    )
    address = loc.address or ((inc.get("location") or {}).get("address") or "")
    deliveries = inc.get("deliveries", [])
    neighbours = sorted(
        {
            d["recipient_name"] or d["recipient_id"]
            for d in deliveries
            if d["target"] == "neighbours"
        }
    )
    deadline_s = ctx.routing.escalation.ack_deadline.get(Severity(inc["severity"]))
    deadlines = [d["ack_deadline"] for d in deliveries if d.get("ack_deadline")]
    first_deadline = min(deadlines) if deadlines else None
    if first_deadline is None and deadline_s is not None:
        first_deadline = inc["opened_at"] + timedelta(seconds=deadline_s)
    who = incident_names(grid, inc)
    acks = [
        {"actor": e["actor"], "name": who.get(e["actor"], e["actor"]), "at": e["at"]}
        for e in inc.get("timeline", [])
        if e["action"] == "acknowledge"
    ]
    cell = grid.areas.get(inc.get("cell") or "")
    return {
        "address": address,
        "household": inc.get("household") or loc.household,
        "cell_name": cell.name if cell else None,
        "neighbours": neighbours,
        "group": loc.group,
        "camera": nearest_camera(ctx, inc),
        "ack_deadline": first_deadline,
        "ack_deadline_s": deadline_s,
        "acks": acks,
        "names": who,
        "staff": _staff(grid, inc.get("cell")),
    }


def incident_names(grid: GridDirectory, inc: dict[str, Any]) -> dict[str, str]:
    """Names of the people this incident refers to (actors, assignees, recipients, the
    cell's staff): the console shows names, not ids, without listing the whole grid."""
    ids: set[str] = set(inc.get("assignees") or ())
    ids.update(str(e.get("actor")) for e in inc.get("timeline", ()))
    for d in inc.get("deliveries", ()):
        ids.update(str(v) for v in (d.get("recipient_id"), d.get("acked_by")) if v)
    ids.update(s["id"] for s in _staff(grid, inc.get("cell")))
    return {p.id: p.name for p in grid.people.values() if p.id in ids}


def person_cells(grid: GridDirectory, person_id: str) -> dict[str, list[str]]:
    """A person's cell and beat assignments, as ``GridListing.sees_person`` takes them."""
    out: dict[str, list[str]] = {"cells": [], "beats": []}
    for (_role, kind, scope_id), ids in grid.assignments.items():
        if person_id in ids and kind in ("cell", "beat"):
            out[f"{kind}s"].append(scope_id)
    return out


def _staff(grid: GridDirectory, cell: str | None) -> list[dict[str, str]]:
    """Whom a dispatcher may assign: grid workers and heads of the cell (and its parents)."""
    if not cell:
        return []
    out: dict[str, dict[str, str]] = {}
    for role in (Role.GRID_WORKER, Role.STATION_GRID_WORKER, Role.GRID_HEAD):
        for p in grid.people_in_cell(role, cell):
            out.setdefault(p.id, {"id": p.id, "name": p.name, "role": role.value})
    return list(out.values())


def incident_audit_query(incident_id: int, dialect: str, limit: int = 100) -> Select[Any]:
    """The audit log's newest ``limit`` rows about one incident: its API and console paths
    and the paths below them (actions, attachments, snapshots), served by the target index
    (migration 0006)."""
    c = audit_log.c
    where = or_(
        *(
            target_is_or_under(f"{prefix}/incidents/{incident_id}", dialect)
            for prefix in ("/api", "/api/web")
        )
    )
    return (
        select(c.id, c.at, c.actor, c.role, c.action, c.status)
        .where(where)
        .order_by(c.id.desc())
        .limit(limit)
    )


def incident_audit(engine: Engine, incident_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """The audit log's rows about one incident (its API and console routes), oldest first."""
    stmt = incident_audit_query(incident_id, engine.dialect.name, limit)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in reversed(conn.execute(stmt).all())]


def masked_contacts(engine: Engine, household: str) -> list[dict[str, Any]] | None:
    """A household's contacts in masked form (``phone_masked``, e.g. 138****5678), as the
    households listing gives them; None when the grid has no such household."""
    found = list_households(engine, only=frozenset({household}))
    if not found:
        return None
    return [
        {k: c.get(k) for k in ("name", "relation", "phone_masked")} for c in found[0]["contacts"]
    ]


def jsonable(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(value, default=str, ensure_ascii=False))
    return out
