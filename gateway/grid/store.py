"""Grid ↔ database: import a validated ``GridConfig``, read the directory back, edit people
and households. Plain blocking functions (run them in a worker thread from async code).

Phone numbers are stored as a keyed hash, a masked form and AES-GCM ciphertext bound to
their record (``gateway.privacy``). Listings never carry the hash or the ciphertext;
``person_phone`` and ``household_phones`` decrypt, for the audited reveal routes."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select

from gateway.config.sites import SiteRegistry
from gateway.grid import tables as t
from gateway.grid.directory import (
    Area,
    BeatEntry,
    GridDirectory,
    HouseholdEntry,
    PersonEntry,
    person_scopes,
)
from gateway.grid.model import Contact, GridConfig, Household, Person, Role
from gateway.privacy import PiiKeyError, decrypt_phone, encrypt_phone, mask_tail, pseudonymise
from gateway.storage.startup import serialize_startup

log = logging.getLogger(__name__)

SCOPE_KEYS = ("streets", "communities", "cells", "beats", "sites")


def _now() -> datetime:
    return datetime.now(UTC)


HIDDEN = ("phone_ref", "phone_enc")  # never in a listing


def household_owner(household_id: str) -> str:
    return f"household/{household_id}"


def person_owner(person_id: str) -> str:
    return f"person/{person_id}"


def contact_row(c: Contact, household_id: str) -> dict[str, Any]:
    return {
        "name": c.name,
        "relation": c.relation,
        "phone_ref": pseudonymise(c.phone, "phone") if c.phone else None,
        "phone_masked": mask_tail(c.phone, 4) if c.phone else None,
        "phone_enc": encrypt_phone(c.phone, household_owner(household_id)) if c.phone else None,
    }


def household_row(h: Household) -> dict[str, Any]:
    return {
        "id": h.id,
        "site": h.site,
        "place": h.place,
        "address": h.address,
        "group_id": h.group,
        "contacts": [contact_row(c, h.id) for c in h.contacts],
        "updated_at": _now(),
    }


def person_rows(p: Person) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    scopes = {k: list(getattr(p, k)) for k in SCOPE_KEYS}
    row = {
        "id": p.id,
        "name": p.name,
        "phone_ref": pseudonymise(p.phone, "phone") if p.phone else None,
        "phone_masked": mask_tail(p.phone, 4) if p.phone else None,
        "phone_enc": encrypt_phone(p.phone, person_owner(p.id)) if p.phone else None,
        "roles": [r.value for r in p.roles],
        "scopes": scopes,
        "active": p.active,
        "updated_at": _now(),
    }
    assignments = []
    pairs = person_scopes(p.streets, p.communities, p.cells, p.beats, p.sites)
    if not any(ids for _, ids in pairs):
        pairs = [("any", [""])]
    for kind, ids in pairs:
        for scope_id in ids:
            for role in p.roles:
                assignments.append(
                    {
                        "person_id": p.id,
                        "role": role.value,
                        "scope_kind": kind,
                        "scope_id": scope_id,
                    }
                )
    return row, assignments


def import_grid(
    engine: Engine, grid: GridConfig, *, only_if_empty: bool = False
) -> dict[str, int] | None:
    """Replace the whole grid in one transaction; returns counts per section. With
    ``only_if_empty`` (a worker's first start), nothing is done — ``None`` — when a grid is
    there already, decided under the start-up lock so that workers starting together import
    it once."""
    areas: list[dict[str, str | None]] = [
        {"id": s.id, "level": "street", "name": s.name} for s in grid.street_offices
    ]
    areas += [
        {"id": c.id, "level": "community", "name": c.name, "parent_id": c.street}
        for c in grid.communities
    ]
    areas += [
        {
            "id": c.id,
            "level": "cell",
            "name": c.name,
            "parent_id": c.community,
            "parent_cell": c.parent,
        }
        for c in grid.cells
    ]
    places: dict[tuple[str, str], str] = {}
    for cell in grid.cells:
        for site in cell.sites:
            places.setdefault((site, ""), cell.id)
        for ref in cell.places:
            places[(ref.site, ref.place)] = cell.id
    people = [person_rows(p) for p in grid.people]
    with engine.begin() as conn:
        serialize_startup(conn)
        if only_if_empty and conn.execute(select(t.grid_areas.c.id).limit(1)).first():
            return None
        for table in t.GRID_TABLES:
            conn.execute(delete(table))
        _insert(conn, t.grid_areas, [{"parent_id": None, "parent_cell": None, **a} for a in areas])
        _insert(
            conn,
            t.grid_cell_places,
            [{"site": s, "place": p, "cell_id": c} for (s, p), c in places.items()],
        )
        _insert(
            conn,
            t.grid_beats,
            [
                {"id": b.id, "name": b.name, "station": b.station, "cells": list(b.cells)}
                for b in grid.beats
            ],
        )
        _insert(
            conn,
            t.grid_neighbour_groups,
            [{"id": g.id, "name": g.name, "cell_id": g.cell} for g in grid.neighbour_groups],
        )
        _insert(conn, t.grid_households, [household_row(h) for h in grid.households])
        _insert(conn, t.grid_people, [row for row, _ in people])
        _insert(conn, t.grid_assignments, [a for _, rows in people for a in rows])
    return {
        "street_offices": len(grid.street_offices),
        "communities": len(grid.communities),
        "cells": len(grid.cells),
        "beats": len(grid.beats),
        "neighbour_groups": len(grid.neighbour_groups),
        "households": len(grid.households),
        "people": len(grid.people),
    }


def _insert(conn: Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(insert(table), rows)


def grid_is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(t.grid_areas.c.id).limit(1)).first() is None


def read_directory(engine: Engine, registry: SiteRegistry | None = None) -> GridDirectory:
    with engine.connect() as conn:
        areas = {
            r.id: Area(r.id, r.level, r.name, r.parent_id, r.parent_cell)
            for r in conn.execute(select(t.grid_areas))
        }
        cell_places = {
            (r.site, r.place): r.cell_id for r in conn.execute(select(t.grid_cell_places))
        }
        beats = {
            r.id: BeatEntry(r.id, r.name, r.station, tuple(r.cells or ()))
            for r in conn.execute(select(t.grid_beats))
        }
        groups = {r.id: (r.name, r.cell_id) for r in conn.execute(select(t.grid_neighbour_groups))}
        households = {
            r.id: HouseholdEntry(r.id, r.site, r.place, r.address, r.group_id)
            for r in conn.execute(select(t.grid_households))
        }
        people = {
            r.id: PersonEntry(
                r.id, r.name, tuple(Role(x) for x in r.roles), r.phone_masked, bool(r.active)
            )
            for r in conn.execute(select(t.grid_people))
        }
        assignments: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        stmt = select(t.grid_assignments).order_by(t.grid_assignments.c.person_id)
        for r in conn.execute(stmt):
            assignments[(r.role, r.scope_kind, r.scope_id)].append(r.person_id)
    return GridDirectory(
        areas=areas,
        cell_places=cell_places,
        beats=beats,
        groups=groups,
        households=households,
        people=people,
        assignments=dict(assignments),
        registry=registry,
    )


# -- edits (API) ------------------------------------------------------------------------


def upsert_person(engine: Engine, person: Person) -> None:
    row, assignments = person_rows(person)
    with engine.begin() as conn:
        conn.execute(delete(t.grid_assignments).where(t.grid_assignments.c.person_id == person.id))
        conn.execute(delete(t.grid_people).where(t.grid_people.c.id == person.id))
        conn.execute(insert(t.grid_people), [row])
        _insert(conn, t.grid_assignments, assignments)


def delete_person(engine: Engine, person_id: str) -> bool:
    with engine.begin() as conn:
        conn.execute(delete(t.grid_assignments).where(t.grid_assignments.c.person_id == person_id))
        result = conn.execute(delete(t.grid_people).where(t.grid_people.c.id == person_id))
    return result.rowcount > 0


def upsert_household(engine: Engine, household: Household) -> None:
    with engine.begin() as conn:
        conn.execute(delete(t.grid_households).where(t.grid_households.c.id == household.id))
        conn.execute(insert(t.grid_households), [household_row(household)])


def delete_household(engine: Engine, household_id: str) -> bool:
    with engine.begin() as conn:
        result = conn.execute(
            delete(t.grid_households).where(t.grid_households.c.id == household_id)
        )
    return result.rowcount > 0


def list_people(
    engine: Engine,
    role: Role | None = None,
    cell: str | None = None,
    visible: Callable[[dict[str, Any]], bool] | None = None,
) -> list[dict[str, Any]]:
    """``visible(row)``: the caller's scope (``gateway.auth.guards.GridListing``)."""
    stmt = select(t.grid_people).order_by(t.grid_people.c.id)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(stmt)]
    out = []
    for r in rows:
        if role is not None and role.value not in r["roles"]:
            continue
        if cell is not None and cell not in (r["scopes"] or {}).get("cells", []):
            continue
        if visible is not None and not visible(r):
            continue
        for key in HIDDEN:
            r.pop(key, None)
        out.append(r)
    return out


def list_households(
    engine: Engine,
    group: str | None = None,
    site: str | None = None,
    only: frozenset[str] | None = None,
) -> list[dict[str, Any]]:
    """``only``: the household ids the caller's scope covers (None: all)."""
    stmt = select(t.grid_households).order_by(t.grid_households.c.id)
    if only is not None:
        stmt = stmt.where(t.grid_households.c.id.in_(sorted(only)))
    if group is not None:
        stmt = stmt.where(t.grid_households.c.group_id == group)
    if site is not None:
        stmt = stmt.where(t.grid_households.c.site == site)
    with engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(stmt)]
    for r in rows:
        r["contacts"] = [{k: v for k, v in c.items() if k not in HIDDEN} for c in r["contacts"]]
    return rows


# -- revealing a number (pii:read, audited by the caller) --------------------------------


def _revealed(token: str | None, owner: str, masked: str | None) -> dict[str, Any]:
    """``phone`` in clear, or None with ``phone_error`` saying why (no number, no key, the
    wrong key, an altered value) — never an exception that could carry the number."""
    if not masked:
        return {"phone": None, "phone_masked": None}
    if not token:
        return {
            "phone": None,
            "phone_masked": masked,
            "phone_error": "not stored encrypted (imported without a personal-data key, or "
            "before migration 0005): import the grid or save the record again",
        }
    try:
        return {"phone": decrypt_phone(token, owner), "phone_masked": masked}
    except PiiKeyError as exc:
        log.error("cannot reveal the phone number of %s: %s", owner, exc)
        return {"phone": None, "phone_masked": masked, "phone_error": str(exc)}


def person_row(engine: Engine, person_id: str) -> dict[str, Any] | None:
    """One person as stored (with ``scopes``), or None."""
    with engine.connect() as conn:
        row = conn.execute(select(t.grid_people).where(t.grid_people.c.id == person_id)).first()
    return None if row is None else dict(row._mapping)


def person_phone(row: dict[str, Any]) -> dict[str, Any]:
    """The number of a person row from ``person_row``."""
    owner = person_owner(row["id"])
    return {"id": row["id"], "name": row["name"]} | _revealed(
        row.get("phone_enc"), owner, row.get("phone_masked")
    )


def household_phones(engine: Engine, household_id: str) -> dict[str, Any] | None:
    """A household's contacts with their numbers, or None when there is no such household."""
    stmt = select(t.grid_households).where(t.grid_households.c.id == household_id)
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    if row is None:
        return None
    owner = household_owner(household_id)
    contacts = [
        {"name": c.get("name"), "relation": c.get("relation")}
        | _revealed(c.get("phone_enc"), owner, c.get("phone_masked"))
        for c in row.contacts or []
    ]
    return {"id": household_id, "contacts": contacts}
