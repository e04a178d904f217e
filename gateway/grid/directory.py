"""The grid in memory: where a device, place or household is, and who works there.

Built from the database (``gateway.grid.store.read_directory``) or straight from a
``GridConfig`` (for ``lianfang routes test``). Immutable once built: an edit through the API
builds a new one and swaps it in, so the alarm path reads without locks or queries.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from gateway.config.sites import SiteRegistry
from gateway.grid.model import GridConfig, Role


@dataclass(frozen=True, slots=True)
class Area:
    id: str
    level: str  # street | community | cell
    name: str
    parent_id: str | None = None
    parent_cell: str | None = None


@dataclass(frozen=True, slots=True)
class BeatEntry:
    id: str
    name: str
    station: str
    cells: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class HouseholdEntry:
    id: str
    site: str
    place: str | None
    address: str
    group: str | None


@dataclass(frozen=True, slots=True)
class PersonEntry:
    id: str
    name: str
    roles: tuple[Role, ...]
    phone_masked: str | None = None
    active: bool = True


@dataclass(frozen=True, slots=True)
class Location:
    """Where something happened, resolved through the grid. Any part may be unknown."""

    site: str | None = None
    place: str | None = None
    device_id: str | None = None
    household: str | None = None
    cell: str | None = None
    community: str | None = None
    street: str | None = None
    beats: tuple[str, ...] = ()
    group: str | None = None
    address: str = ""


@dataclass
class GridDirectory:
    areas: dict[str, Area] = field(default_factory=dict)
    cell_places: dict[tuple[str, str], str] = field(default_factory=dict)
    beats: dict[str, BeatEntry] = field(default_factory=dict)
    groups: dict[str, tuple[str, str]] = field(default_factory=dict)  # id → (name, cell)
    households: dict[str, HouseholdEntry] = field(default_factory=dict)
    people: dict[str, PersonEntry] = field(default_factory=dict)
    # (role, scope kind, scope id) → person ids
    assignments: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)
    registry: SiteRegistry | None = None

    def __post_init__(self) -> None:
        self._beats_of: dict[str, list[str]] = defaultdict(list)
        for beat in self.beats.values():
            for cell in beat.cells:
                self._beats_of[cell].append(beat.id)
        self._group_members: dict[str, list[str]] = defaultdict(list)
        for h in self.households.values():
            if h.group:
                self._group_members[h.group].append(h.id)

    # -- building ------------------------------------------------------------------------
    @classmethod
    def from_config(cls, grid: GridConfig, registry: SiteRegistry | None = None) -> GridDirectory:
        areas = {s.id: Area(s.id, "street", s.name) for s in grid.street_offices}
        areas.update({c.id: Area(c.id, "community", c.name, c.street) for c in grid.communities})
        areas.update({c.id: Area(c.id, "cell", c.name, c.community, c.parent) for c in grid.cells})
        cell_places: dict[tuple[str, str], str] = {}
        for cell in grid.cells:
            for site in cell.sites:
                cell_places.setdefault((site, ""), cell.id)
            for ref in cell.places:
                cell_places[(ref.site, ref.place)] = cell.id
        assignments: dict[tuple[str, str, str], list[str]] = defaultdict(list)
        for p in grid.people:
            for kind, scope_ids in person_scopes(
                p.streets, p.communities, p.cells, p.beats, p.sites
            ):
                for scope_id in scope_ids:
                    for role in p.roles:
                        assignments[(role.value, kind, scope_id)].append(p.id)
            if not any((p.streets, p.communities, p.cells, p.beats, p.sites)):
                for role in p.roles:
                    assignments[(role.value, "any", "")].append(p.id)
        return cls(
            areas=areas,
            cell_places=cell_places,
            beats={b.id: BeatEntry(b.id, b.name, b.station, tuple(b.cells)) for b in grid.beats},
            groups={g.id: (g.name, g.cell) for g in grid.neighbour_groups},
            households={
                h.id: HouseholdEntry(h.id, h.site, h.place, h.address, h.group)
                for h in grid.households
            },
            people={
                p.id: PersonEntry(p.id, p.name, tuple(p.roles), None, p.active) for p in grid.people
            },
            assignments=dict(assignments),
            registry=registry,
        )

    # -- location ------------------------------------------------------------------------
    def _place_cell(self, site: str, place: str | None) -> str | None:
        """The cell of a place: the place itself, then its parents, then the whole site."""
        parents: dict[str, str | None] = {}
        if self.registry is not None and site in self.registry.sites:
            parents = {p.id: p.parent for p in self.registry.sites[site].places}
        seen: set[str] = set()
        while place is not None and place not in seen:
            seen.add(place)
            cell = self.cell_places.get((site, place))
            if cell is not None:
                return cell
            place = parents.get(place)
        return self.cell_places.get((site, ""))

    def locate(
        self,
        *,
        site: str | None = None,
        device_id: str | None = None,
        place: str | None = None,
        household: str | None = None,
        cell: str | None = None,
    ) -> Location:
        """Resolve the grid location from whatever is known (explicit values win)."""
        if device_id is not None and self.registry is not None:
            found = self.registry.device(device_id)
            if found is not None:
                site_cfg, dev = found
                site = site or site_cfg.id
                place = place or dev.place
                household = household or dev.household
        hh = self.households.get(household) if household else None
        if hh is not None:
            site = site or hh.site
            place = place or hh.place
        if cell is None and site is not None:
            cell = self._place_cell(site, place)
        community = street = None
        area = self.areas.get(cell) if cell else None
        if area is not None:
            top = self.top_cell(area.id)
            community = self.areas[top].parent_id
            street = self.areas[community].parent_id if community in self.areas else None
        return Location(
            site=site,
            place=place,
            device_id=device_id,
            household=household,
            cell=cell,
            community=community,
            street=street,
            beats=tuple(self.beats_of(cell)) if cell else (),
            group=hh.group if hh is not None else None,
            address=hh.address if hh is not None else "",
        )

    def cell_chain(self, cell: str) -> Iterator[str]:
        """The cell, then (for a micro-grid) its parent cells upwards."""
        seen: set[str] = set()
        current: str | None = cell
        while current is not None and current not in seen and current in self.areas:
            seen.add(current)
            yield current
            current = self.areas[current].parent_cell

    def top_cell(self, cell: str) -> str:
        last = cell
        for c in self.cell_chain(cell):
            last = c
        return last

    def beats_of(self, cell: str) -> list[str]:
        for c in self.cell_chain(cell):
            if self._beats_of.get(c):
                return list(self._beats_of[c])
        return []

    def group_members(self, group: str) -> list[str]:
        return list(self._group_members.get(group, []))

    # -- people --------------------------------------------------------------------------
    def people_for(self, role: Role, kind: str, scope_id: str) -> list[PersonEntry]:
        ids = self.assignments.get((role.value, kind, scope_id), [])
        return [self.people[i] for i in ids if i in self.people and self.people[i].active]

    def people_in_cell(self, role: Role, cell: str, *, climb: bool = True) -> list[PersonEntry]:
        """People with ``role`` in the cell; with ``climb`` a micro-grid without one asks its
        parent cell, then the community."""
        for c in self.cell_chain(cell):
            found = self.people_for(role, "cell", c)
            if found or not climb:
                return found
        community = self.areas[self.top_cell(cell)].parent_id if cell in self.areas else None
        return self.people_for(role, "community", community) if community and climb else []

    def cells(self) -> list[Area]:
        return [a for a in self.areas.values() if a.level == "cell"]


def person_scopes(
    streets: Iterable[str],
    communities: Iterable[str],
    cells: Iterable[str],
    beats: Iterable[str],
    sites: Iterable[str],
) -> list[tuple[str, list[str]]]:
    return [
        ("street", list(streets)),
        ("community", list(communities)),
        ("cell", list(cells)),
        ("beat", list(beats)),
        ("site", list(sites)),
    ]
