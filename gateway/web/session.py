"""Who is using the console, what they may open and which incidents they may see.

THE ROLE SEAM of the web console is ``current_user``: everything else (navigation, pages,
scoped incident lists) is derived from the ``WebUser`` it returns, made from the accounts'
session (``gateway.auth``) and the grid person the account is linked to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import HTTPConnection

from gateway.grid.directory import GridDirectory
from gateway.grid.model import Role

SESSION_COOKIE = "lianfang_session"  # the accounts' session (gateway.api.deps)
LANG_COOKIE = "lianfang_lang"

# Pages by role; the first page a role may open is its home page.
COMMAND, DESK, GRID, RESIDENT, DEVICES, RULES, QUARANTINE = (
    "command",
    "desk",
    "grid",
    "resident",
    "devices",
    "rules",
    "quarantine",
)
PAGE_ORDER = (COMMAND, DESK, GRID, RESIDENT, DEVICES, RULES, QUARANTINE)
PAGES_BY_ROLE: dict[Role, tuple[str, ...]] = {
    Role.ADMINISTRATOR: (COMMAND, DESK, GRID, DEVICES, RULES, QUARANTINE),
    Role.COMMAND_OPERATOR: (COMMAND, DESK, GRID),
    Role.GRID_SUPERVISING_LEADER: (COMMAND, GRID),
    Role.GRID_CONVENER: (COMMAND, GRID),
    Role.LIAISON_INSTRUCTOR: (COMMAND, GRID),
    Role.GRID_INSTRUCTOR: (GRID,),
    Role.GRID_HEAD: (GRID,),
    Role.GRID_WORKER: (GRID,),
    Role.STATION_GRID_WORKER: (GRID,),
    Role.POLICE_DESK: (DESK, COMMAND),
    Role.COMMUNITY_POLICE: (DESK,),
    Role.PROPERTY_MANAGER: (DEVICES, COMMAND),
    Role.RESIDENT: (RESIDENT,),
    Role.INTEGRATOR: (QUARANTINE,),  # device types: what arrives and what the profiles make of it
}
# Roles that see every incident.
GLOBAL_ROLES = frozenset({Role.ADMINISTRATOR, Role.COMMAND_OPERATOR})


@dataclass(frozen=True, slots=True)
class WebUser:
    id: str
    name: str
    roles: tuple[Role, ...]
    # scope kind (street, community, cell, beat, site) → ids
    scopes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    household: str | None = None

    @property
    def role(self) -> Role:
        """The main role (the one whose home page opens first)."""
        return self.roles[0]

    @property
    def pages(self) -> list[str]:
        allowed = {p for r in self.roles for p in PAGES_BY_ROLE.get(r, ())}
        first = [p for r in self.roles for p in PAGES_BY_ROLE.get(r, ())]
        ordered = list(dict.fromkeys(first))
        return [p for p in ordered if p in allowed]

    def may_open(self, page: str) -> bool:
        return page in self.pages

    @property
    def home(self) -> str:
        return self.pages[0] if self.pages else RESIDENT

    def public(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role.value,
            "roles": [r.value for r in self.roles],
            "scopes": {k: list(v) for k, v in self.scopes.items()},
            "household": self.household,
            "pages": self.pages,
        }


def person_scopes(grid: GridDirectory, person_id: str) -> dict[str, tuple[str, ...]]:
    """Invert the directory's assignments: where does this person work."""
    out: dict[str, list[str]] = {}
    for (_role, kind, scope_id), ids in grid.assignments.items():
        if person_id in ids and scope_id:
            out.setdefault(kind, [])
            if scope_id not in out[kind]:
                out[kind].append(scope_id)
    return {k: tuple(v) for k, v in out.items()}


def household_of(grid: GridDirectory, person_id: str, sites: tuple[str, ...]) -> str | None:
    """The resident's household. The grid has no person→household link yet: a resident
    scoped to a site gets the first household of that site (the demo resident: 1-1-101)."""
    for hh in sorted(grid.households.values(), key=lambda h: h.id):
        if hh.site in sites:
            return hh.id
    return None


def user_for(grid: GridDirectory, person_id: str) -> WebUser | None:
    person = grid.people.get(person_id)
    if person is None or not person.active or not person.roles:
        return None
    scopes = person_scopes(grid, person_id)
    household = None
    if Role.RESIDENT in person.roles:
        household = household_of(grid, person_id, scopes.get("site", ()))
    return WebUser(person.id, person.name, tuple(person.roles), scopes, household)


def _from_principal(principal: Any, grid: GridDirectory) -> WebUser | None:
    """The accounts' principal (gateway.auth) as a console user."""
    role: Role | None
    try:
        role = Role(getattr(principal, "role", ""))
    except ValueError:
        role = Role.ADMINISTRATOR if getattr(principal, "role", "") == "administrator" else None
    if role is None:
        return None
    person_id = getattr(principal, "person_id", None)
    base = user_for(grid, person_id) if person_id else None
    scope = getattr(principal, "scope", None)
    scopes = dict(base.scopes) if base else {}
    if scope is not None and not getattr(scope, "everything", False):
        scopes.setdefault("cell", tuple(sorted(scope.cells)))
        scopes.setdefault("site", tuple(sorted(scope.incident_sites)))
    households = sorted(getattr(scope, "households", ()) or ())
    return WebUser(
        person_id or principal.actor,
        base.name if base else principal.name,
        (role,),
        scopes,
        households[0] if households else (base.household if base else None),
    )


async def current_user(conn: HTTPConnection, grid: GridDirectory) -> WebUser | None:
    """THE SEAM: the signed-in user of this request, or None (→ the sign-in page): the
    session cookie set by ``POST /api/auth/login``, checked by the accounts service
    (``app.state.auth``; without one nobody is signed in)."""
    auth = getattr(conn.app.state, "auth", None)
    token = conn.cookies.get(SESSION_COOKIE)
    if auth is None or not token or len(token) > 512:
        return None
    import anyio.to_thread

    principal = await anyio.to_thread.run_sync(auth.principal_for, token)
    return _from_principal(principal, grid) if principal is not None else None


# -- incident scope -------------------------------------------------------------------------


def can_see(user: WebUser, incident: dict[str, Any], grid: GridDirectory) -> bool:
    """May ``user`` see this incident (listing, detail, actions)?"""
    if any(r in GLOBAL_ROLES for r in user.roles):
        return True
    if user.id in (incident.get("assignees") or []) or incident.get("reporter") == user.id:
        return True
    cell = incident.get("cell")
    chain = list(grid.cell_chain(cell)) if cell else []
    s = user.scopes
    if set(chain) & set(s.get("cell", ())):
        return True
    if incident.get("community") and incident["community"] in s.get("community", ()):
        return True
    if cell and set(grid.beats_of(cell)) & set(s.get("beat", ())):
        return True
    if chain and s.get("street"):
        community = grid.areas[grid.top_cell(chain[0])].parent_id
        area = grid.areas.get(community) if community else None
        if area is not None and area.parent_id in s["street"]:
            return True
    if Role.PROPERTY_MANAGER in user.roles and incident.get("site") in s.get("site", ()):
        return True
    return bool(
        Role.RESIDENT in user.roles
        and user.household
        and incident.get("household") == user.household
    )
