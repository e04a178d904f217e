"""The console's own API (/api/web) and pages keep the API's rules: an incident of another
grid answers 404 like a missing one, names and site plans only within the caller's scope,
and WebSocket handshakes only from the gateway's own pages."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from gateway.api.app import create_app
from gateway.auth.roles import AccountRole
from gateway.auth.service import CLI
from gateway.web import WebContext
from gateway.web import routes as web_routes
from tests.auth.conftest import World, _incident, _Stub, make_world
from tests.support.incidents_app import ROUTERS, with_incidents
from tests.test_api_live import AsgiConnection


@dataclass
class Console:
    world: World
    app: Any
    passwords: dict[str, str]

    async def session(self, user: str) -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="https://t"
        )
        r = await client.post(
            "/api/auth/login", json={"username": user, "password": self.passwords[user]}
        )
        assert r.status_code == 200, r.text
        return client


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    async for w in make_world(tmp_path):
        gateway = SimpleNamespace(
            engine=w.rt.engine,
            registry=w.rt.registry,
            config=SimpleNamespace(profiles_dir=tmp_path),
            cameras=SimpleNamespace(
                live=SimpleNamespace(cameras={"cam-north": None}),
                snapshots=SimpleNamespace(camera_for=lambda _device: None),
                store=SimpleNamespace(for_ref=lambda _ref: []),
            ),
        )
        app = with_incidents(
            create_app(_Stub(w.rt), extra_routers=[*ROUTERS, *web_routes.api_routers], auth=w.auth),  # type: ignore[arg-type]
            w.rt,
        )
        app.include_router(web_routes.pages_router)
        app.state.web = WebContext(gateway, w.rt)  # type: ignore[arg-type]
        passwords: dict[str, str] = {}
        for name, role, extra in (
            ("cw1", AccountRole.GRID_WORKER, {"person_id": "p-worker-1"}),
            ("cres", AccountRole.RESIDENT, {"household_id": "1-1-101"}),
            ("cdesk", AccountRole.POLICE_DESK, {"person_id": "p-desk"}),
            ("cadmin", AccountRole.ADMINISTRATOR, {}),
        ):
            passwords[name] = secrets.token_urlsafe(16)
            w.auth.create_user(name, passwords[name], role, CLI, **extra)  # type: ignore[arg-type]
        yield Console(w, app, passwords)


async def test_incident_of_another_grid_is_not_found_like_a_missing_one(console: Console) -> None:
    w = console.world
    client = await console.session("cw1")  # p-worker-1: cell shifan-01
    mine, other = w.incidents["cell1"], w.incidents["b6"]
    assert (await client.get(f"/api/web/incidents/{mine}")).status_code == 200
    outside = await client.get(f"/api/web/incidents/{other}")
    missing = await client.get("/api/web/incidents/999999")
    assert outside.status_code == missing.status_code == 404
    assert outside.json()["detail"].replace(str(other), "N") == missing.json()["detail"].replace(
        "999999", "N"
    )
    for path in (f"/api/web/alarm/{other}", f"/api/web/incidents/{other}/snapshot"):
        r = await (client.get(path) if "alarm" in path else client.post(path))
        assert r.status_code == 404, path
    page_outside = await client.get(f"/console/incidents/{other}")
    page_missing = await client.get("/console/incidents/999999")
    assert page_outside.status_code == page_missing.status_code == 404
    await client.aclose()


async def test_names_and_site_plan_only_within_scope(console: Console) -> None:
    resident = await console.session("cres")
    assert (await resident.get("/api/web/people")).status_code == 403
    assert (await resident.get("/api/web/siteplan/demo-compound.svg")).status_code == 404
    assert (await resident.get("/api/web/sites")).json() == []
    assert (await resident.get("/api/web/cameras")).json() == []
    # the incident the resident reported names only the people it refers to
    mine = await _incident(console.world.rt, "cres", site="demo-compound", household="1-1-101")
    own = await resident.get(f"/api/web/incidents/{mine}")
    assert own.status_code == 200
    names = own.json()["context"]["names"]
    assert "p-worker-3" not in names and "p-desk" not in names  # nothing to do with it
    await resident.aclose()

    worker = await console.session("cw1")
    people = (await worker.get("/api/web/people")).json()
    assert "p-worker-1" in people and "p-worker-2" in people  # their cell
    assert "p-worker-3" not in people  # cell shifan-02
    await worker.aclose()

    admin = await console.session("cadmin")
    assert len((await admin.get("/api/web/people")).json()) >= 15
    r = await admin.get("/api/web/siteplan/demo-compound.svg")
    assert r.status_code == 200 and r.headers["content-type"].startswith("image/svg+xml")
    assert (await admin.get("/api/web/cameras")).json() == ["cam-north"]
    await admin.aclose()


ORIGINS = [
    (None, True),  # not a browser: authentication decides
    ("http://gateway.test", True),  # the gateway's own page (Host: gateway.test)
    ("https://gateway.test", True),  # behind a TLS proxy
    ("http://evil.example", False),
    ("http://gateway.test.evil.example", False),
    ("null", False),
]


async def test_websocket_handshake_checks_the_origin(console: Console) -> None:
    for origin, accepted in ORIGINS:
        headers = dict(console.world.as_("cmd"))
        if origin is not None:
            headers["origin"] = origin
        for path in ("/api/notifications/ws", "/api/events/ws"):
            conn = AsgiConnection(console.app, "websocket", path, {}, headers)
            message = await conn.next_message()
            if accepted:
                assert message["type"] == "websocket.accept", (origin, path, message)
            else:
                assert message["type"] == "websocket.close", (origin, path, message)
                assert message["code"] == 1008
            await conn.disconnect()
