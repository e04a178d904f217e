"""Every role × every endpoint × own/other object: 401 without credentials, 403 without the
permission, 404 (path objects) or 403 (households named in a body) outside the scope, and
an answer otherwise. Listings only show what the scope covers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
import pytest

from gateway.auth.principal import Permission as P
from gateway.auth.roles import ROLE_PERMISSIONS
from tests.auth.conftest import ACCOUNTS, World

pytestmark = pytest.mark.asyncio(loop_scope="module")

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64
UNSCOPED = {"cmd", "admin", "integ"}

# username → (own, other) per object kind
INCIDENT = {
    "w1": ("cell1", "b6"), "h2": ("b6", "cell1"), "desk1": ("cell1", "b6"),
    "cp2": ("b6", "cell1"), "pm": ("cell1", "far"), "res1": ("res1", "cell1"),
}  # fmt: skip
HOUSEHOLD = {
    "w1": ("1-1-101", "6-1-102"), "h2": ("6-1-102", "1-1-101"), "desk1": ("1-1-101", "6-1-102"),
    "cp2": ("6-1-102", "1-1-101"), "pm": ("1-1-101", "zz-elsewhere"), "res1": ("1-1-101", "1-1-502"),
}  # fmt: skip
PERSON = {  # grid people assigned in the user's cells (own) and elsewhere (other)
    "w1": ("p-worker-1", "p-worker-3"), "h2": ("p-worker-3", "p-worker-1"),
    "desk1": ("p-worker-1", "p-worker-3"), "cp2": ("p-worker-3", "p-worker-1"),
}  # fmt: skip


def objects(kind: str, user: str) -> tuple[str, str]:
    if kind in ("incident", "notification"):
        return INCIDENT.get(user, ("cell1", "far"))
    if kind in ("household", "home"):
        return HOUSEHOLD.get(user, ("1-1-101", "6-1-102"))
    if kind == "person":
        return PERSON.get(user, ("p-worker-1", "p-worker-3"))
    if kind == "device":
        return ("d-own", "d-other")
    if kind == "event":
        return ("e-own", "e-other")
    return ("", "")


Call = Callable[[World, httpx.AsyncClient, dict[str, str], str], "object"]


@dataclass(frozen=True)
class Endpoint:
    name: str
    permission: P
    kind: str | None  # incident | household (in a body) | home (in the path) | person | device
    # | event | None
    method: str
    path: str  # {obj} is the object (an incident key is turned into its id)
    body: Callable[[str], object] | None = None
    raw: bytes | None = None
    tolerated: frozenset[int] = frozenset()  # e.g. 503 where a service is not running


ENDPOINTS = [
    Endpoint("health", P.HEALTH_READ, None, "GET", "/api/health"),
    Endpoint("devices", P.DEVICES_READ, None, "GET", "/api/devices"),
    Endpoint("device", P.DEVICES_READ, "device", "GET", "/api/devices/{obj}"),
    Endpoint("events", P.EVENTS_READ, None, "GET", "/api/events"),
    Endpoint("event", P.EVENTS_READ, "event", "GET", "/api/events/{obj}"),
    Endpoint("quarantine", P.QUARANTINE_READ, None, "GET", "/api/quarantine"),
    Endpoint("rules", P.RULES_READ, None, "GET", "/api/rules", tolerated=frozenset({503})),
    Endpoint("rules-reload", P.RULES_WRITE, None, "POST", "/api/rules/reload", tolerated=frozenset({503})),
    Endpoint("evidence", P.EVIDENCE_READ, None, "GET", "/api/evidence?ref=1"),
    Endpoint("incidents", P.INCIDENTS_READ, None, "GET", "/api/incidents"),
    Endpoint("incident", P.INCIDENTS_READ, "incident", "GET", "/api/incidents/{obj}"),
    Endpoint("action", P.INCIDENTS_WRITE, "incident", "POST", "/api/incidents/{obj}/actions",
             body=lambda _: {"action": "comment", "note": "看过了"}),
    Endpoint("attach", P.INCIDENTS_WRITE, "incident", "POST",
             "/api/incidents/{obj}/attachments?filename=p.png", raw=PNG),
    Endpoint("report", P.INCIDENTS_REPORT, "household", "POST", "/api/incidents",
             body=lambda h: {"category": "other", "title_zh": "巡查", "household": h}),
    Endpoint("hazard", P.HAZARD_REPORT, "household", "POST", "/api/hazard-reports",
             body=lambda h: {"text": "楼道堆物", "location": {"address": "1号楼"}, "household": h}),
    Endpoint("alarm", P.ALARM_RAISE, "household", "POST", "/api/alarms", body=lambda h: {"household": h}),
    Endpoint("ack", P.INCIDENTS_WRITE, "notification", "POST", "/api/notifications/{obj}/ack",
             body=lambda _: {}),
    Endpoint("stats", P.STATS_READ, None, "GET", "/api/stats/summary"),
    Endpoint("grid-read", P.GRID_READ, None, "GET", "/api/grid/beats"),
    Endpoint("grid-write", P.GRID_WRITE, None, "DELETE", "/api/grid/households/zz-none",
             tolerated=frozenset({404})),
    Endpoint("phone", P.PII_READ, "person", "GET", "/api/grid/people/{obj}/phone"),
    Endpoint("phones", P.PII_READ, "home", "GET", "/api/grid/households/{obj}/phones"),
    Endpoint("users", P.USERS_MANAGE, None, "GET", "/api/users"),
    Endpoint("audit", P.AUDIT_READ, None, "GET", "/api/audit"),
    Endpoint("tokens", P.TOKENS_CREATE, None, "GET", "/api/auth/tokens"),
]  # fmt: skip

CASES = [
    pytest.param(user, ep, which, id=f"{user}-{ep.name}-{which}")
    for user in [None, *ACCOUNTS]
    for ep in ENDPOINTS
    for which in (("own", "other") if ep.kind else ("-",))
]


def expected(user: str | None, ep: Endpoint, which: str) -> int | None:
    """401/403/404, or None for "answered" (not refused)."""
    if user is None:
        return 401
    if ep.permission not in ROLE_PERMISSIONS[ACCOUNTS[user][0]]:
        return 403
    if ep.name == "ack" and ACCOUNTS[user][0] == "resident":
        return 403  # residents are told; staff acknowledge
    if which == "other" and user not in UNSCOPED:
        return 403 if ep.kind == "household" else 404
    return None


async def _call(w: World, user: str | None, ep: Endpoint, which: str) -> httpx.Response:
    own, other = objects(ep.kind or "", user or "w1")
    obj = own if which in ("own", "-") else other
    if ep.kind == "incident":
        obj = str(w.incidents[obj])
    elif ep.kind == "notification":  # the first notification of that incident
        obj = str(w.notification_of(w.incidents[obj]))
    path = ep.path.replace("{obj}", obj)
    headers = w.as_(user)
    if ep.raw is not None:
        headers = {**headers, "content-type": "image/png"}
        return await w.client.request(ep.method, path, content=ep.raw, headers=headers)
    body = ep.body(obj) if ep.body else None
    return await w.client.request(ep.method, path, json=body, headers=headers)


@pytest.mark.parametrize(("user", "ep", "which"), CASES)
async def test_matrix(shared_world: World, user: str | None, ep: Endpoint, which: str) -> None:
    response = await _call(shared_world, user, ep, which)
    want = expected(user, ep, which)
    if want is None:
        assert response.status_code < 500 or response.status_code in ep.tolerated, response.text
        assert (
            response.status_code not in (401, 403, 404) or response.status_code in ep.tolerated
        ), (
            response.status_code,
            response.text,
        )
    else:
        assert response.status_code == want, response.text


@pytest.mark.parametrize("user", [u for u in ACCOUNTS if u not in UNSCOPED and u != "integ"])
async def test_incident_listing_shows_only_the_scope(shared_world: World, user: str) -> None:
    perms = ROLE_PERMISSIONS[ACCOUNTS[user][0]]
    if P.INCIDENTS_READ not in perms:
        pytest.skip("no incident listing for this role")
    r = await shared_world.client.get("/api/incidents", headers=shared_world.as_(user))
    ids = {i["id"] for i in r.json()["items"]}
    own, other = INCIDENT[user]
    assert shared_world.incidents[own] in ids
    assert shared_world.incidents[other] not in ids


async def test_event_listing_and_masking(shared_world: World) -> None:
    pm = await shared_world.client.get("/api/events", headers=shared_world.as_("pm"))
    assert {e["event_id"] for e in pm.json()["items"]} == {"e-own"}
    # the property manager has no pii:read: plates masked, raw payload hidden
    assert pm.json()["items"][0]["attributes"]["plate"] == "浙A***45"
    detail = await shared_world.client.get("/api/events/e-own", headers=shared_world.as_("pm"))
    assert "浙A12345" not in detail.text
    police = await shared_world.client.get("/api/events/e-own", headers=shared_world.as_("desk1"))
    assert police.json()["attributes"]["plate"] == "浙A12345"
    asked = await shared_world.client.get("/api/events?site=far", headers=shared_world.as_("pm"))
    assert asked.json()["items"] == []


async def test_resident_actions_are_limited(shared_world: World) -> None:
    iid = shared_world.incidents["res1"]
    r = await shared_world.client.post(
        f"/api/incidents/{iid}/actions",
        json={"action": "dispatch"},
        headers=shared_world.as_("res1"),
    )
    assert r.status_code == 403


async def test_actor_is_the_principal_not_the_body(shared_world: World) -> None:
    r = await shared_world.client.post(
        "/api/hazard-reports",
        json={"text": "路灯坏了", "location": {"address": "北门"}, "reporter": "p-command"},
        headers=shared_world.as_("res1"),
    )
    assert r.status_code == 201
    detail = await shared_world.client.get(
        f"/api/incidents/{r.json()['id']}", headers=shared_world.as_("res1")
    )
    assert detail.json()["reporter"] == "res1"
    assert detail.json()["household"] == "1-1-101"
