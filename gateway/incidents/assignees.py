"""Who may be dispatched to an incident: active grid people in the incident's scope.

The scope of an incident is its community (the cells of the community its cell belongs to,
micro-grids included), else its compound. A person is in it when one of their cells,
beats, communities or street offices reaches a cell of that community, or when they are
assigned the compound itself. A person assigned nowhere in particular (the grid's ``any``)
and, for an incident the grid cannot place, every active staff member may be dispatched.
Residents are never assignees. Ids that are no grid person are refused, so statistics and
exports only ever name real people.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from gateway.auth.scope import cells_of
from gateway.grid.directory import GridDirectory, Location
from gateway.grid.model import Role


def _assignments(grid: GridDirectory, person_id: str) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for (_role, kind, scope_id), ids in grid.assignments.items():
        if person_id in ids:
            out[kind].add(scope_id)
    return out


def _in_scope(grid: GridDirectory, person_id: str, loc: Location) -> bool:
    person = grid.people.get(person_id)
    if person is None or not person.active or not set(person.roles) - {Role.RESIDENT}:
        return False
    if loc.community is None and loc.site is None:
        return True
    a = _assignments(grid, person_id)
    if "any" in a or (loc.site is not None and loc.site in a["site"]):
        return True
    if loc.community is None:
        return False
    theirs = cells_of(
        grid,
        streets=sorted(a["street"]),
        communities=sorted(a["community"]),
        cells=sorted(a["cell"]),
        beats=sorted(a["beat"]),
    )
    return not theirs.isdisjoint(cells_of(grid, communities=[loc.community]))


def unassignable(
    grid: GridDirectory,
    assignees: Sequence[str],
    *,
    cell: str | None,
    site: str | None,
    household: str | None = None,
) -> list[str]:
    """The assignees that may not be dispatched to an incident at this place."""
    loc = grid.locate(site=site, cell=cell, household=household)
    return [a for a in dict.fromkeys(assignees) if not _in_scope(grid, a, loc)]
