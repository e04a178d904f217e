"""Resolving receivers' targets (roles) into concrete recipients through the grid.

=====================  ==============================================================
target                 recipients
=====================  ==============================================================
police_desk            ``police-desk/<beat>`` for each beat covering the cell
community_police       people with that role on the cell's beats
grid_worker, …         people with that role in the cell (a micro-grid without one asks
                       its parent cell, then the community)
grid_convener, …       people with that role in the cell's community (or the cell)
community              ``community/<community>`` (the community office console)
property_manager       people with that role on the site (compound)
neighbours             ``neighbour-group/<group>`` of the household
command_centre         ``command-centre/<street>`` (``command-centre/default`` if unknown)
=====================  ==============================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.grid.directory import GridDirectory, Location
from gateway.grid.model import Role
from gateway.routing.model import Target


@dataclass(frozen=True, slots=True)
class Recipient:
    kind: str  # police-desk | person | community | neighbour-group | command-centre
    id: str
    name: str
    target: Target

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.id}"


_CELL_ROLES = {
    Target.GRID_WORKER: Role.GRID_WORKER,
    Target.STATION_GRID_WORKER: Role.STATION_GRID_WORKER,
    Target.GRID_HEAD: Role.GRID_HEAD,
    Target.GRID_INSTRUCTOR: Role.GRID_INSTRUCTOR,
}
_COMMUNITY_ROLES = {
    Target.GRID_CONVENER: Role.GRID_CONVENER,
    Target.GRID_SUPERVISING_LEADER: Role.GRID_SUPERVISING_LEADER,
    Target.LIAISON_INSTRUCTOR: Role.LIAISON_INSTRUCTOR,
}


def resolve(target: Target, loc: Location, grid: GridDirectory) -> list[Recipient]:
    def people(entries: list[object]) -> list[Recipient]:
        return [
            Recipient("person", p.id, p.name, target)  # type: ignore[attr-defined]
            for p in entries
        ]

    if target is Target.POLICE_DESK:
        return [
            Recipient("police-desk", b, grid.beats[b].name if b in grid.beats else b, target)
            for b in loc.beats
        ]
    if target is Target.COMMUNITY_POLICE:
        found = []
        for b in loc.beats:
            found.extend(grid.people_for(Role.COMMUNITY_POLICE, "beat", b))
        return people(list(found))
    if target in _CELL_ROLES:
        if loc.cell is None:
            return []
        return people(list(grid.people_in_cell(_CELL_ROLES[target], loc.cell)))
    if target in _COMMUNITY_ROLES:
        role = _COMMUNITY_ROLES[target]
        found = list(grid.people_in_cell(role, loc.cell, climb=False)) if loc.cell else []
        if not found and loc.community:
            found = grid.people_for(role, "community", loc.community)
        return people(list(found))
    if target is Target.COMMUNITY:
        if loc.community is None:
            return []
        name = grid.areas[loc.community].name if loc.community in grid.areas else loc.community
        return [Recipient("community", loc.community, name, target)]
    if target is Target.PROPERTY_MANAGER:
        return (
            people(list(grid.people_for(Role.PROPERTY_MANAGER, "site", loc.site)))
            if loc.site
            else []
        )
    if target is Target.NEIGHBOURS:
        if loc.group is None:
            return []
        name = grid.groups[loc.group][0] if loc.group in grid.groups else loc.group
        return [Recipient("neighbour-group", loc.group, name, target)]
    # command centre
    street = loc.street or "default"
    name = grid.areas[street].name if street in grid.areas else "指挥中心"
    return [Recipient("command-centre", street, name, target)]


@dataclass(frozen=True, slots=True)
class Nobody:
    """Why a target resolved to nobody: a ``code`` (the console's message key
    ``routing.why.<code>``), the ``values`` it names, and the English ``reason``."""

    code: str
    reason: str
    values: dict[str, str]


def why_nobody(target: Target, loc: Location, grid: GridDirectory) -> Nobody:
    """Why ``resolve(target, loc, grid)`` found nobody, in words an integrator can act on
    (``lianfang routes test``, the console's routing tester): the key to give, or what the
    grid lacks."""
    role = target.value
    if target is Target.PROPERTY_MANAGER:
        if loc.site is None:
            return Nobody(
                "needs_site",
                "needs site= (the compound): property managers are assigned per compound; "
                "give site=, or a device= or household= of the compound",
                {},
            )
        return Nobody(
            "no_property_manager",
            f"no property_manager is assigned to site {loc.site} on the grid",
            {"site": loc.site},
        )
    if target is Target.NEIGHBOURS:
        if loc.household is None:
            return Nobody(
                "needs_household",
                "needs household= (the 十户联防 neighbour group is the household's)",
                {},
            )
        values = {"household": loc.household}
        if loc.household not in grid.households:
            return Nobody(
                "household_not_on_grid", f"household {loc.household} is not on the grid", values
            )
        return Nobody(
            "household_no_group", f"household {loc.household} is in no neighbour group", values
        )
    if target is Target.COMMAND_CENTRE:  # always resolves (command-centre/default)
        return Nobody("no_command_centre", "no command centre", {})
    if loc.cell is None:
        return Nobody(
            "needs_cell",
            "needs a cell: give cell=, or a site=, device= or household= the grid places in one",
            {},
        )
    cell = {"cell": loc.cell}
    if loc.cell not in grid.areas:
        return Nobody("cell_not_on_grid", f"cell {loc.cell} is not on the grid", cell)
    if target is Target.POLICE_DESK or (target is Target.COMMUNITY_POLICE and not loc.beats):
        return Nobody("no_beat", f"no police beat covers cell {loc.cell}", cell)
    if target is Target.COMMUNITY_POLICE:
        beats = ", ".join(loc.beats)
        return Nobody(
            "no_community_police", f"no community_police on beat {beats}", {"beats": beats}
        )
    if target is Target.COMMUNITY:
        return Nobody("no_community", f"cell {loc.cell} belongs to no community", cell)
    if target in _CELL_ROLES:
        return Nobody(
            "no_role_in_cell",
            f"no {role} in cell {loc.cell}, the cells above it or its community",
            {**cell, "role": role},
        )
    return Nobody(
        "no_role_in_community",
        f"no {role} in cell {loc.cell} or its community",
        {**cell, "role": role},
    )
