"""Scope resolution through the grid: which cells, compounds and households a principal
covers. Pure functions over a ``GridDirectory`` (in memory, no query).

- grid roles: the cells assigned to them, the cells of assigned communities and street
  offices, and every micro-grid below those cells;
- police (desk, community police): the cells of their beats (警网融合), plus any cells;
- property managers: their compounds (sites); incidents of those compounds;
- residents: their household; incidents they reported themselves;
- command operators, integrators and administrators: everything unless a street office,
  community or site is assigned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from gateway.auth.principal import EVERYTHING, Scope
from gateway.auth.roles import UNSCOPED_BY_DEFAULT, AccountRole
from gateway.grid.directory import GridDirectory

SCOPE_KEYS = ("streets", "communities", "cells", "beats", "sites")
Assignments = Mapping[str, Sequence[str]]


def cells_of(
    grid: GridDirectory,
    *,
    streets: Sequence[str] = (),
    communities: Sequence[str] = (),
    cells: Sequence[str] = (),
    beats: Sequence[str] = (),
) -> frozenset[str]:
    """Every cell (micro-grids included) under the given areas and beats."""
    roots: set[str] = {c for c in cells if c in grid.areas}
    for beat_id in beats:
        beat = grid.beats.get(beat_id)
        if beat is not None:
            roots.update(beat.cells)
    wanted_communities = set(communities)
    wanted_streets = set(streets)
    if wanted_communities or wanted_streets:
        for area in grid.cells():
            community = grid.areas[grid.top_cell(area.id)].parent_id
            street = grid.areas[community].parent_id if community in grid.areas else None
            if community in wanted_communities or street in wanted_streets:
                roots.add(area.id)
    out: set[str] = set()
    for area in grid.cells():
        if any(c in roots for c in grid.cell_chain(area.id)):
            out.add(area.id)
    return frozenset(out)


def sites_of_cells(grid: GridDirectory, cells: frozenset[str]) -> frozenset[str]:
    return frozenset(site for (site, _place), cell in grid.cell_places.items() if cell in cells)


def resolve_scope(
    role: AccountRole,
    assignments: Assignments,
    grid: GridDirectory,
    *,
    household: str | None = None,
    actor: str | None = None,
) -> Scope:
    """The scope of one account: its role, its own and its grid person's assignments."""
    get = {k: list(assignments.get(k, ())) for k in SCOPE_KEYS}
    if role is AccountRole.RESIDENT:
        households = frozenset({household}) if household else frozenset()
        return Scope(households=households, reporter=actor)
    if role in UNSCOPED_BY_DEFAULT and not any(get.values()):
        return EVERYTHING
    cells = cells_of(
        grid,
        streets=get["streets"],
        communities=get["communities"],
        cells=get["cells"],
        beats=get["beats"],
    )
    own_sites = frozenset(get["sites"])
    sites = own_sites | sites_of_cells(grid, cells)
    households = frozenset(
        h.id
        for h in grid.households.values()
        if h.site in own_sites or grid.locate(household=h.id).cell in cells
    )
    if role is AccountRole.PROPERTY_MANAGER:
        return Scope(sites=own_sites, incident_sites=own_sites, households=households)
    return Scope(cells=cells, sites=sites, incident_sites=own_sites, households=households)
