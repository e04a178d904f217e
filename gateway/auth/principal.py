"""Who is calling, what they may do and where: ``Principal``, ``Scope``, ``Permission``.

Kept free of FastAPI and the database so every layer (API dependencies, queries, masking)
can import it. Roles and their permissions are in ``gateway.auth.roles``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Permission(StrEnum):
    HEALTH_READ = "health:read"
    DEVICES_READ = "devices:read"
    DEVICES_WRITE = "devices:write"
    EVENTS_READ = "events:read"
    QUARANTINE_READ = "quarantine:read"  # includes raw payloads, which may hold personal data
    RULES_READ = "rules:read"
    RULES_WRITE = "rules:write"
    EVIDENCE_READ = "evidence:read"  # snapshots show people
    LIVE_VIEW = "live:view"  # live pictures show people
    INCIDENTS_READ = "incidents:read"
    INCIDENTS_WRITE = "incidents:write"  # workflow actions, attachments, acknowledgements
    INCIDENTS_REPORT = "incidents:report"  # manual reports by staff
    HAZARD_REPORT = "hazards:report"  # residents' 随手报
    ALARM_RAISE = "alarms:raise"  # one-button alarm from the app
    STATS_READ = "stats:read"
    GRID_READ = "grid:read"
    GRID_WRITE = "grid:write"
    USERS_MANAGE = "users:manage"
    TOKENS_CREATE = "tokens:create"  # API tokens for integrations
    AUDIT_READ = "audit:read"
    PII_READ = "pii:read"  # unmasked phone numbers and plates


ALL = "*"


@dataclass(frozen=True, slots=True)
class Scope:
    """The part of the grid a principal covers.

    ``everything``: no restriction. Otherwise incidents are visible when their cell is in
    ``cells`` or their site in ``incident_sites`` (site-scoped roles: property managers), or
    when ``reporter`` filed them (residents: their own reports only). Devices, events and
    cameras are visible when their site is in ``sites``.
    """

    everything: bool = False
    cells: frozenset[str] = frozenset()
    sites: frozenset[str] = frozenset()
    incident_sites: frozenset[str] = frozenset()
    households: frozenset[str] = frozenset()
    reporter: str | None = None

    def sees_site(self, site: str | None) -> bool:
        return self.everything or (site is not None and site in self.sites)

    def sees_incident(self, cell: str | None, site: str | None, reporter: str | None) -> bool:
        if self.everything:
            return True
        if cell is not None and cell in self.cells:
            return True
        if site is not None and site in self.incident_sites:
            return True
        return self.reporter is not None and reporter == self.reporter

    def owns_household(self, household: str | None) -> bool:
        return self.everything or (household is not None and household in self.households)


EVERYTHING = Scope(everything=True)
NOTHING = Scope()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. ``permissions`` holds ``Permission`` values, or ``"*"`` for all.

    ``actor`` is the name recorded on timelines and in the audit log: the grid person id
    when the account is linked to one, else the user name.
    """

    name: str
    permissions: frozenset[str] = field(default_factory=frozenset)
    anonymous: bool = False
    role: str = ""
    user_id: str | None = None
    person_id: str | None = None
    scope: Scope = NOTHING
    token_id: str | None = None
    session_id: str | None = None

    def allows(self, permission: str) -> bool:
        return ALL in self.permissions or permission in self.permissions

    @property
    def actor(self) -> str:
        return self.person_id or self.name


ANONYMOUS = Principal("anonymous", frozenset(), anonymous=True)
