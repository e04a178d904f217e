"""The grid configuration: strict models, YAML and CSV loading, cross-reference checks.

A grid directory (``config/grid/``) holds any number of ``*.yaml`` files, each with any of
the sections below, and optionally ``households.csv`` and ``people.csv``. Sections from
several files are concatenated; ids must be unique across files. Every error names the
file and the key path (``cells[2].community``) or CSV row and column (``row 4.phone``).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from gateway.config.errors import ConfigError, ConfigErrors
from gateway.config.loader import load_yaml
from gateway.config.sites import SiteRegistry
from gateway.ids import Id, Name

PHONE = re.compile(r"^(\+?86[- ]?)?(1[3-9]\d{9}|0\d{2,3}-?\d{7,8}|110|119|120)$")


class Role(StrEnum):
    """Who a person is on the grid, and the role of an account (``gateway.auth.roles``).
    The first seven are the grid roles of the seeds; ``integrator`` is an account role only
    (device types and API tokens), never a person on the grid."""

    GRID_SUPERVISING_LEADER = "grid_supervising_leader"  # 网格分管领导
    GRID_CONVENER = "grid_convener"  # 网格召集人
    GRID_INSTRUCTOR = "grid_instructor"  # 网格指导员
    GRID_HEAD = "grid_head"  # 网格长
    GRID_WORKER = "grid_worker"  # 网格员
    STATION_GRID_WORKER = "station_grid_worker"  # 基层站所网格员
    LIAISON_INSTRUCTOR = "liaison_instructor"  # 联系部门指导员
    COMMUNITY_POLICE = "community_police"  # 社区民警
    POLICE_DESK = "police_desk"  # 派出所值班台
    PROPERTY_MANAGER = "property_manager"  # 物业经理
    COMMAND_OPERATOR = "command_operator"  # 指挥中心值班员
    RESIDENT = "resident"  # 居民
    ADMINISTRATOR = "administrator"  # 系统管理员
    INTEGRATOR = "integrator"  # 集成商 (accounts only)


ACCOUNT_ONLY_ROLES = frozenset({Role.INTEGRATOR})

ROLE_NAMES_ZH: dict[Role, str] = {
    Role.GRID_SUPERVISING_LEADER: "网格分管领导",
    Role.GRID_CONVENER: "网格召集人",
    Role.GRID_INSTRUCTOR: "网格指导员",
    Role.GRID_HEAD: "网格长",
    Role.GRID_WORKER: "网格员",
    Role.STATION_GRID_WORKER: "基层站所网格员",
    Role.LIAISON_INSTRUCTOR: "联系部门指导员",
    Role.COMMUNITY_POLICE: "社区民警",
    Role.POLICE_DESK: "派出所值班台",
    Role.PROPERTY_MANAGER: "物业经理",
    Role.COMMAND_OPERATOR: "指挥中心值班员",
    Role.RESIDENT: "居民",
    Role.ADMINISTRATOR: "系统管理员",
    Role.INTEGRATOR: "集成商",
}


def _as_list(value: Any) -> Any:
    if isinstance(value, str):
        return [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
    return value


IdList = Annotated[list[Id], BeforeValidator(_as_list)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _phone(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    compact = value.replace(" ", "")
    if not PHONE.match(compact):
        raise ValueError("not a phone number (mobile 1xxxxxxxxxx or landline 0xxx-xxxxxxx)")
    return compact


class StreetOffice(Strict):
    id: Id
    name: Name = Field(..., min_length=1, max_length=100)


class Community(Strict):
    id: Id
    name: Name = Field(..., min_length=1, max_length=100)
    street: Id = Field(..., description="Street office id")


class PlaceRef(Strict):
    site: Id
    place: Id


class Cell(Strict):
    """A grid cell (网格); with ``parent`` a micro-grid (微网格) inside another cell."""

    id: Id
    name: Name = Field(..., min_length=1, max_length=100)
    community: Id
    parent: Id | None = Field(None, description="Parent cell id: this is a micro-grid")
    sites: IdList = Field(default_factory=list, description="Compounds wholly in this cell")
    places: list[PlaceRef] = Field(
        default_factory=list, description="Places (and what is below them) in this cell"
    )


class Beat(Strict):
    """A police beat (警务区) and the cells it covers (警网融合)."""

    id: Id
    name: Name = Field(..., min_length=1, max_length=100)
    station: Name = Field("", max_length=100, description="Police station (派出所)")
    cells: IdList = Field(..., min_length=1)


class NeighbourGroup(Strict):
    """A 十户联防 group: about ten households that are told when one presses its button."""

    id: Id
    name: Name = Field(..., min_length=1, max_length=100)
    cell: Id


class Contact(Strict):
    name: Name = Field(..., min_length=1, max_length=50)
    phone: str | None = None
    relation: Name = Field("", max_length=20)

    _p = field_validator("phone")(_phone)


class Household(Strict):
    id: Id = Field(..., description="As the site's devices name it (``household:``)")
    site: Id
    place: Id | None = Field(None, description="Unit or building place id")
    address: Name = Field("", max_length=200)
    group: Id | None = Field(None, description="Neighbour group id")
    contacts: list[Contact] = Field(default_factory=list, max_length=10)


class Person(Strict):
    id: Id
    name: Name = Field(..., min_length=1, max_length=50)
    phone: str | None = None
    roles: Annotated[list[Role], BeforeValidator(_as_list)] = Field(..., min_length=1)
    streets: IdList = Field(default_factory=list)
    communities: IdList = Field(default_factory=list)
    cells: IdList = Field(default_factory=list)
    beats: IdList = Field(default_factory=list)
    sites: IdList = Field(default_factory=list)
    active: bool = True

    _p = field_validator("phone")(_phone)

    @field_validator("roles")
    @classmethod
    def _grid_roles(cls, roles: list[Role]) -> list[Role]:
        wrong = [r.value for r in roles if r in ACCOUNT_ONLY_ROLES]
        if wrong:
            raise ValueError(f"{', '.join(wrong)} is an account role, not a role on the grid")
        return roles


class GridFile(Strict):
    """One grid YAML file: every section is optional."""

    street_offices: list[StreetOffice] = Field(default_factory=list)
    communities: list[Community] = Field(default_factory=list)
    cells: list[Cell] = Field(default_factory=list)
    beats: list[Beat] = Field(default_factory=list)
    neighbour_groups: list[NeighbourGroup] = Field(default_factory=list)
    households: list[Household] = Field(default_factory=list)
    people: list[Person] = Field(default_factory=list)


SECTIONS = tuple(GridFile.model_fields)


@dataclass
class GridConfig:
    """The whole grid, merged from every file. ``origin`` names where each item came from."""

    street_offices: list[StreetOffice] = field(default_factory=list)
    communities: list[Community] = field(default_factory=list)
    cells: list[Cell] = field(default_factory=list)
    beats: list[Beat] = field(default_factory=list)
    neighbour_groups: list[NeighbourGroup] = field(default_factory=list)
    households: list[Household] = field(default_factory=list)
    people: list[Person] = field(default_factory=list)
    origin: dict[tuple[str, int], tuple[str, str]] = field(default_factory=dict)

    def add(self, section: str, item: BaseModel, file: str, path: str) -> None:
        items: list[BaseModel] = getattr(self, section)
        self.origin[(section, len(items))] = (file, path)
        items.append(item)

    def where(self, section: str, index: int, key: str) -> tuple[str, str]:
        file, path = self.origin.get((section, index), ("<api>", f"{section}[{index}]"))
        return file, f"{path}.{key}" if key else path

    def check(self, sites: SiteRegistry | None = None) -> list[ConfigError]:
        """Cross references and unique ids; ``sites`` enables site/place checks."""
        return _check(self, sites)


# -- loading ----------------------------------------------------------------------------


def _csv_rows(path: Path) -> list[dict[str, str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigErrors([ConfigError(str(path), "<file>", f"cannot read: {exc}")]) from exc
    reader = csv.DictReader(io.StringIO(text))
    return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]


def _household_from_csv(row: dict[str, str]) -> dict[str, Any]:
    """Columns: id, site, place, address, group, contact_name, contact_phone, contact_relation
    (a second contact: contact2_name, contact2_phone, contact2_relation)."""
    out: dict[str, Any] = {k: v for k, v in row.items() if not k.startswith("contact") and v}
    contacts = []
    for prefix in ("contact", "contact2"):
        name = row.get(f"{prefix}_name", "")
        if name:
            contacts.append(
                {
                    "name": name,
                    "phone": row.get(f"{prefix}_phone") or None,
                    "relation": row.get(f"{prefix}_relation", ""),
                }
            )
    unknown = [
        k
        for k in row
        if k.startswith("contact")
        and k.removeprefix("contact2").removeprefix("contact")
        not in ("_name", "_phone", "_relation")
    ]
    for k in unknown:
        out[k] = row[k]  # rejected by the strict model as an unknown key
    out["contacts"] = contacts
    return out


def _person_from_csv(row: dict[str, str]) -> dict[str, Any]:
    """Columns: id, name, phone, roles, streets, communities, cells, beats, sites, active
    (lists separated by ``;`` or ``,``)."""
    out: dict[str, Any] = {k: v for k, v in row.items() if v != ""}
    if "active" in out:
        out["active"] = out["active"].lower() in ("1", "true", "yes", "y", "是")
    return out


def _add_validated(
    grid: GridConfig,
    errors: list[ConfigError],
    section: str,
    model: type[BaseModel],
    data: Any,
    file: str,
    path: str,
) -> None:
    try:
        item = model.model_validate(data)
    except ValidationError as exc:
        errors.extend(ConfigErrors.from_validation(exc, file, [path]).errors)
        return
    grid.add(section, item, file, path)


def load_grid(source: Path, sites: SiteRegistry | None = None) -> GridConfig:
    """Load a grid directory (or one YAML/CSV file); raise ``ConfigErrors`` listing every
    problem with its file and key path."""
    grid = GridConfig()
    errors: list[ConfigError] = []
    files = sorted(source.iterdir()) if source.is_dir() else [source]
    if source.is_dir() is False and not source.exists():
        raise ConfigErrors([ConfigError(str(source), "<file>", "no such file or directory")])
    for path in files:
        if path.suffix in (".yaml", ".yml"):
            data = load_yaml(path)
            if data is None:
                continue
            if not isinstance(data, dict):
                errors.append(ConfigError(str(path), "<root>", "expected a mapping of sections"))
                continue
            for key in data:
                if key not in SECTIONS:
                    errors.append(ConfigError(str(path), str(key), "unknown section (typo?)"))
            for section in SECTIONS:
                items = data.get(section) or []
                if not isinstance(items, list):
                    errors.append(ConfigError(str(path), section, "expected a list"))
                    continue
                model = GridFile.model_fields[section].annotation
                item_model: type[BaseModel] = model.__args__[0]  # type: ignore[union-attr]
                for i, item in enumerate(items):
                    _add_validated(
                        grid, errors, section, item_model, item, str(path), f"{section}[{i}]"
                    )
        elif path.suffix == ".csv":
            stem = path.stem
            if stem not in ("households", "people"):
                errors.append(
                    ConfigError(str(path), "<file>", "CSV files are households.csv or people.csv")
                )
                continue
            rows = _csv_rows(path)
            for n, row in enumerate(rows, start=2):  # row 1 is the header
                if stem == "households":
                    _add_validated(
                        grid,
                        errors,
                        "households",
                        Household,
                        _household_from_csv(row),
                        str(path),
                        f"row {n}",
                    )
                else:
                    _add_validated(
                        grid,
                        errors,
                        "people",
                        Person,
                        _person_from_csv(row),
                        str(path),
                        f"row {n}",
                    )
    errors.extend(grid.check(sites))
    if errors:
        raise ConfigErrors(errors)
    return grid


# -- cross-reference checks -------------------------------------------------------------


def _ids(items: Iterable[BaseModel]) -> set[str]:
    return {str(getattr(i, "id")) for i in items}  # noqa: B009


_SINGULAR = {
    "streets": "street office",
    "communities": "community",
    "cells": "cell",
    "beats": "beat",
}


def _check(grid: GridConfig, sites: SiteRegistry | None) -> list[ConfigError]:
    errors: list[ConfigError] = []

    def err(section: str, index: int, key: str, message: str) -> None:
        file, path = grid.where(section, index, key)
        errors.append(ConfigError(file, path, message))

    for section in SECTIONS:
        seen: dict[str, int] = {}
        for i, item in enumerate(getattr(grid, section)):
            if item.id in seen:
                first = grid.where(section, seen[item.id], "")
                err(section, i, "id", f"{item.id!r} is already defined at {first[0]}: {first[1]}")
            seen.setdefault(item.id, i)
    streets = _ids(grid.street_offices)
    communities = _ids(grid.communities)
    cells = _ids(grid.cells)
    groups = _ids(grid.neighbour_groups)
    beats = _ids(grid.beats)

    def known_site(section: str, i: int, key: str, site: str) -> bool:
        if sites is not None and site not in sites.sites:
            err(section, i, key, f"unknown site {site!r} (not in the sites directory)")
            return False
        return True

    def known_place(section: str, i: int, key: str, site: str, place: str) -> None:
        if sites is None or site not in sites.sites:
            return
        if place not in {p.id for p in sites.sites[site].places}:
            err(section, i, key, f"site {site!r} has no place {place!r}")

    for i, c in enumerate(grid.communities):
        if c.street not in streets:
            err("communities", i, "street", f"unknown street office {c.street!r}")
    parent_of: dict[str, str | None] = {c.id: c.parent for c in grid.cells}
    for i, cell in enumerate(grid.cells):
        if cell.community not in communities:
            err("cells", i, "community", f"unknown community {cell.community!r}")
        if cell.parent is not None:
            if cell.parent not in cells:
                err("cells", i, "parent", f"unknown parent cell {cell.parent!r}")
            else:
                seen_chain = {cell.id}
                up: str | None = cell.parent
                while up is not None:
                    if up in seen_chain:
                        err("cells", i, "parent", "cells form a cycle")
                        break
                    seen_chain.add(up)
                    up = parent_of.get(up)
        for j, site in enumerate(cell.sites):
            known_site("cells", i, f"sites[{j}]", site)
        for j, ref in enumerate(cell.places):
            if known_site("cells", i, f"places[{j}].site", ref.site):
                known_place("cells", i, f"places[{j}].place", ref.site, ref.place)
    owner: dict[tuple[str, str], str] = {}
    for cell in grid.cells:
        for site in cell.sites:
            site_key = (site, "")
            if site_key in owner and cell.parent is None:
                i = next(k for k, other in enumerate(grid.cells) if other.id == cell.id)
                err(
                    "cells",
                    i,
                    "sites",
                    f"site {site!r} already belongs to cell {owner[site_key]!r}",
                )
            owner.setdefault(site_key, cell.id)
    for i, b in enumerate(grid.beats):
        for j, cell_id in enumerate(b.cells):
            if cell_id not in cells:
                err("beats", i, f"cells[{j}]", f"unknown cell {cell_id!r}")
    for i, g in enumerate(grid.neighbour_groups):
        if g.cell not in cells:
            err("neighbour_groups", i, "cell", f"unknown cell {g.cell!r}")
    for i, h in enumerate(grid.households):
        if known_site("households", i, "site", h.site) and h.place is not None:
            known_place("households", i, "place", h.site, h.place)
        if h.group is not None and h.group not in groups:
            err("households", i, "group", f"unknown neighbour group {h.group!r}")
    scopes = {
        "streets": streets,
        "communities": communities,
        "cells": cells,
        "beats": beats,
    }
    for i, p in enumerate(grid.people):
        for scope, known in scopes.items():
            for j, ref in enumerate(getattr(p, scope)):
                if ref not in known:
                    err("people", i, f"{scope}[{j}]", f"unknown {_SINGULAR[scope]} {ref!r}")
        for j, site in enumerate(p.sites):
            known_site("people", i, f"sites[{j}]", site)
    return errors
