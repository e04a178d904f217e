"""Account roles and what each may do. The roles are ``gateway.grid.model.Role``, one
vocabulary; accounts may also be an integrator (device types and vendors, API tokens, no
personal data), which is never a person on the grid.

Permissions say *what* a role may do; the scope (``gateway.auth.scope``) says *where*.
"""

from __future__ import annotations

from gateway.auth.principal import Permission as P
from gateway.grid.model import Role

# One role vocabulary for grid people and accounts (the integrator is an account only).
AccountRole = Role


_GRID_STAFF = frozenset(
    {
        P.INCIDENTS_READ,
        P.INCIDENTS_WRITE,
        P.INCIDENTS_REPORT,
        P.GRID_READ,
        P.PII_READ,  # they call residents back and verify on site
    }
)
_GRID_LEAD = _GRID_STAFF | {P.STATS_READ}
_POLICE = frozenset(
    {
        P.DEVICES_READ,
        P.EVENTS_READ,
        P.LIVE_VIEW,
        P.EVIDENCE_READ,  # the desk shows the nearest camera's snapshot with an alarm
        P.INCIDENTS_READ,
        P.INCIDENTS_WRITE,
        P.INCIDENTS_REPORT,
        P.ALARM_RAISE,
        P.GRID_READ,
        P.PII_READ,
    }
)

ROLE_PERMISSIONS: dict[AccountRole, frozenset[P]] = {
    AccountRole.GRID_SUPERVISING_LEADER: _GRID_LEAD,
    AccountRole.GRID_CONVENER: _GRID_LEAD,
    AccountRole.GRID_INSTRUCTOR: _GRID_STAFF,
    AccountRole.GRID_HEAD: _GRID_LEAD,
    AccountRole.GRID_WORKER: _GRID_STAFF,
    AccountRole.STATION_GRID_WORKER: _GRID_STAFF,
    AccountRole.LIAISON_INSTRUCTOR: _GRID_STAFF - {P.PII_READ},
    AccountRole.COMMUNITY_POLICE: _POLICE,
    AccountRole.POLICE_DESK: _POLICE,
    AccountRole.PROPERTY_MANAGER: frozenset(
        {
            P.HEALTH_READ,
            P.DEVICES_READ,
            P.DEVICES_WRITE,
            P.EVENTS_READ,
            P.LIVE_VIEW,
            P.INCIDENTS_READ,
            P.INCIDENTS_REPORT,
            P.ALARM_RAISE,
        }
    ),
    AccountRole.COMMAND_OPERATOR: frozenset(
        {
            P.HEALTH_READ,
            P.DEVICES_READ,
            P.EVENTS_READ,
            P.RULES_READ,
            P.EVIDENCE_READ,
            P.LIVE_VIEW,
            P.INCIDENTS_READ,
            P.INCIDENTS_WRITE,
            P.INCIDENTS_REPORT,
            P.ALARM_RAISE,
            P.STATS_READ,
            P.GRID_READ,
            P.PII_READ,
        }
    ),
    AccountRole.RESIDENT: frozenset(
        # Own reports only (scope): read them, add photos, comment, cancel, evaluate.
        {P.ALARM_RAISE, P.HAZARD_REPORT, P.INCIDENTS_READ, P.INCIDENTS_WRITE}
    ),
    # Runs the system: accounts, grid, rules, audit. Sees incidents and pictures, but not
    # unmasked personal data, and does not raise alarms or file reports for households.
    AccountRole.ADMINISTRATOR: frozenset(P)
    - {P.PII_READ, P.ALARM_RAISE, P.HAZARD_REPORT, P.INCIDENTS_REPORT},
    AccountRole.INTEGRATOR: frozenset(
        {
            P.HEALTH_READ,
            P.DEVICES_READ,
            P.EVENTS_READ,
            P.QUARANTINE_READ,
            P.RULES_READ,
            P.TOKENS_CREATE,
        }
    ),
}

# Roles that see everything when no street/community/site is assigned to them.
UNSCOPED_BY_DEFAULT = frozenset(
    {AccountRole.ADMINISTRATOR, AccountRole.COMMAND_OPERATOR, AccountRole.INTEGRATOR}
)

# What a resident may do on their own report.
RESIDENT_ACTIONS = frozenset({"comment", "attach", "cancel", "evaluate"})


def permissions_of(role: AccountRole) -> frozenset[str]:
    return frozenset(p.value for p in ROLE_PERMISSIONS[role])
