"""HTTP API for grid administration: areas, beats, neighbour groups, people, households
(the running grid: ``app.state.incidents``, the incidents runtime that holds it).

Edits are validated like the YAML (unknown cells, beats, groups are refused with 422) and
take effect at once: the runtime rebuilds the in-memory directory used for routing.
Phone numbers are stored hashed, masked and encrypted; listings show the masked form only.
``pii:read`` roles reveal one person's or one household's numbers (within their scope)
with ``…/phone`` and ``…/phones``; every reveal is an audit row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi import Path as PathParam
from sqlalchemy import Engine

from gateway.api.deps import Database, DatabaseDep, app_part, require
from gateway.audit.middleware import record_reveal
from gateway.auth.guards import GridListingDep
from gateway.auth.principal import Permission
from gateway.grid import store
from gateway.grid.directory import GridDirectory
from gateway.grid.model import Household, Person, Role
from gateway.ids import ID_MAX, ID_PATTERN


class GridContext(Protocol):
    @property
    def engine(self) -> Engine: ...

    @property
    def grid(self) -> GridDirectory: ...

    async def reload_grid(self) -> None: ...


def _refs_person(grid: GridDirectory, p: Person) -> list[str]:
    problems = []
    for key, level in (("streets", "street"), ("communities", "community"), ("cells", "cell")):
        for ref in getattr(p, key):
            area = grid.areas.get(ref)
            if area is None or area.level != level:
                problems.append(f"{key}: unknown {level} {ref!r}")
    problems += [f"beats: unknown beat {b!r}" for b in p.beats if b not in grid.beats]
    return problems


def _refs_household(grid: GridDirectory, h: Household) -> list[str]:
    problems = []
    if h.group is not None and h.group not in grid.groups:
        problems.append(f"group: unknown neighbour group {h.group!r}")
    if grid.registry is not None and h.site not in grid.registry.sites:
        problems.append(f"site: unknown site {h.site!r}")
    return problems


GridId = Annotated[str, PathParam(min_length=1, max_length=ID_MAX, pattern=ID_PATTERN)]


GridDep = Annotated[GridContext, Depends(app_part("incidents"))]
READ = [Depends(require(Permission.GRID_READ))]
REVEAL = [*READ, Depends(require(Permission.PII_READ))]
WRITE = [Depends(require(Permission.GRID_WRITE))]
router = APIRouter(prefix="/api/grid", tags=["grid"])


async def _edit(ctx: GridContext, fn: Callable[[], Awaitable[Any]]) -> Any:
    """Run an edit, then rebuild the in-memory directory the routing uses."""
    result = await fn()
    await ctx.reload_grid()
    return result


async def _save(
    ctx: GridContext,
    db: Database,
    path_id: str,
    body: Person | Household,
    problems: list[str],
    upsert: Callable[..., Any],
) -> dict[str, Any]:
    """Upsert a person or household after checking its id and its references."""
    if body.id != path_id:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "id in path and body differ")
    if problems:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, problems)
    await _edit(ctx, lambda: db.run(upsert, body))
    return {"id": path_id, "saved": True}


async def _delete(
    ctx: GridContext, db: Database, what: str, item_id: str, delete: Callable[..., Any]
) -> dict[str, Any]:
    if not await _edit(ctx, lambda: db.run(delete, item_id)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no {what} {item_id!r}")
    return {"id": item_id, "deleted": True}


@router.get("/areas", dependencies=READ)
async def areas(ctx: GridDep) -> list[dict[str, Any]]:
    """Street offices, communities, cells and micro-grids, with each cell's beats."""
    g = ctx.grid
    return [
        {
            "id": a.id,
            "level": a.level,
            "name": a.name,
            "parent_id": a.parent_id,
            "parent_cell": a.parent_cell,
            "beats": g.beats_of(a.id) if a.level == "cell" else [],
        }
        for a in g.areas.values()
    ]


@router.get("/beats", dependencies=READ)
async def beats(ctx: GridDep) -> list[dict[str, Any]]:
    return [
        {"id": b.id, "name": b.name, "station": b.station, "cells": list(b.cells)}
        for b in ctx.grid.beats.values()
    ]


@router.get("/neighbour-groups", dependencies=READ)
async def groups(ctx: GridDep) -> list[dict[str, Any]]:
    g = ctx.grid
    return [
        {"id": gid, "name": name, "cell": cell, "households": g.group_members(gid)}
        for gid, (name, cell) in g.groups.items()
    ]


@router.get("/people", dependencies=READ)
async def people(
    ctx: GridDep,
    scope: GridListingDep,
    db: DatabaseDep,
    role: Role | None = None,
    cell: str | None = None,
) -> list[dict[str, Any]]:
    """People assigned to cells of the caller's scope."""
    grid = ctx.grid
    return await db.run(
        store.list_people, role, cell, lambda p: scope.sees_person(grid, p["scopes"])
    )


@router.get("/people/{person_id}/phone", dependencies=REVEAL)
async def person_phone(
    person_id: GridId, request: Request, ctx: GridDep, scope: GridListingDep, db: DatabaseDep
) -> dict[str, Any]:
    """One person's phone number in clear (``pii:read``; the person must be assigned within
    the caller's scope, else 404). Recorded in the audit log. ``phone`` is null with
    ``phone_error`` when it cannot be decrypted (e.g. the wrong key)."""
    row = await db.run(store.person_row, person_id)
    if row is None or not scope.sees_person(ctx.grid, row["scopes"]):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no person {person_id!r}")
    answer = store.person_phone(row)
    await record_reveal(request, {"person": person_id, "revealed": answer["phone"] is not None})
    return answer


@router.put("/people/{person_id}", dependencies=WRITE)
async def put_person(person_id: str, body: Person, ctx: GridDep, db: DatabaseDep) -> dict[str, Any]:
    problems = _refs_person(ctx.grid, body)
    return await _save(ctx, db, person_id, body, problems, store.upsert_person)


@router.delete("/people/{person_id}", dependencies=WRITE)
async def delete_person(person_id: str, ctx: GridDep, db: DatabaseDep) -> dict[str, Any]:
    return await _delete(ctx, db, "person", person_id, store.delete_person)


@router.get("/households", dependencies=READ)
async def households(
    scope: GridListingDep,
    db: DatabaseDep,
    group: Annotated[str | None, Query()] = None,
    site: Annotated[str | None, Query()] = None,
) -> list[dict[str, Any]]:
    """Households the caller's scope covers (a resident: their own)."""
    return await db.run(store.list_households, group, site, scope.household_ids)


@router.get("/households/{household_id}/phones", dependencies=REVEAL)
async def household_phones(
    household_id: GridId, request: Request, scope: GridListingDep, db: DatabaseDep
) -> dict[str, Any]:
    """A household's contacts with their phone numbers in clear (``pii:read``; the household
    must be in the caller's scope, else 404). Recorded in the audit log."""
    only = scope.household_ids
    found = None if only is not None and household_id not in only else household_id
    answer = None if found is None else await db.run(store.household_phones, found)
    if answer is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no household {household_id!r}")
    revealed = sum(c["phone"] is not None for c in answer["contacts"])
    await record_reveal(request, {"household": household_id, "revealed": revealed})
    return answer


@router.put("/households/{household_id}", dependencies=WRITE)
async def put_household(
    household_id: str, body: Household, ctx: GridDep, db: DatabaseDep
) -> dict[str, Any]:
    problems = _refs_household(ctx.grid, body)
    return await _save(ctx, db, household_id, body, problems, store.upsert_household)


@router.delete("/households/{household_id}", dependencies=WRITE)
async def delete_household(household_id: str, ctx: GridDep, db: DatabaseDep) -> dict[str, Any]:
    return await _delete(ctx, db, "household", household_id, store.delete_household)
