"""Adding and editing devices through ``PUT /api/devices/{id}`` (the console's Devices page):
stored, listed, used by ingest at once, kept over the site files across a restart, scoped
to the caller's compounds, validated with clear reasons, audited. Removing one the console
added through ``DELETE /api/devices/{id}``: unknown to ingest at once, its events kept,
refused for the site files' devices, scoped and audited likewise."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select

from gateway.audit.tables import audit_log
from gateway.auth.roles import AccountRole
from gateway.auth.service import CLI
from gateway.config.settings import load_gateway_config
from gateway.demo.broker import EmbeddedBroker
from gateway.runtime import Gateway
from gateway.server import build_app
from gateway.storage import tables
from rules.conditions.absence import AbsenceState
from tests.support.compound import SITE, Publisher, event_payload, topic, write_gateway_config

pytestmark = [pytest.mark.broker, pytest.mark.slow]

OTHER = "other-compound"
ACCOUNTS = {
    "pm": (AccountRole.PROPERTY_MANAGER, {"sites": [SITE]}),
    "pm-other": (AccountRole.PROPERTY_MANAGER, {"sites": [OTHER]}),
    "worker": (AccountRole.GRID_WORKER, {"cells": ["shifan-01"]}),
    "admin": (AccountRole.ADMINISTRATOR, {}),
}


def write_sites(sites: Path) -> None:
    """The test compound (with places) and a second compound of another manager."""
    doors = [{"id": f"door-{i}", "kind": "access", "place": "b1-door"} for i in range(1, 6)]
    (sites / "test.yaml").write_text(
        yaml.safe_dump(
            {
                "id": SITE,
                "name": "测试小区",
                "places": [
                    {"id": "b1", "kind": "building", "name": "1号楼"},
                    {"id": "b1-door", "kind": "door", "parent": "b1"},
                ],
                "devices": [
                    *doors,
                    {"id": "cam-1", "kind": "perimeter"},
                    {"id": "panic-1", "kind": "alarm", "household": "1-101"},
                    # push devices: their protocol settings have no field in the console
                    {
                        "id": "panel-1",
                        "kind": "alarm",
                        "password_env": "LF_TEST_PANEL_PW",
                        "sia": {"account": "1234", "zones": {"015": "1-101"}},
                    },
                    {
                        "id": "31010800001320000001",
                        "kind": "perimeter",
                        "gb28181": {"password_env": "LF_TEST_GB_PW"},
                    },
                ],
            },
            allow_unicode=True,
        )
    )
    (sites / "other.yaml").write_text(
        yaml.safe_dump({"id": OTHER, "devices": [{"id": "other-door", "kind": "access"}]})
    )


@dataclass
class Running:
    config_path: Path
    broker_port: int
    gateway: Gateway | None = None
    client: httpx.AsyncClient | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    async def start(self) -> None:
        self.gateway = Gateway(load_gateway_config(self.config_path), protocol="v311")
        await self.gateway.start()
        app = await build_app(self.gateway)
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        auth = app.state.auth
        for name, (role, scopes) in ACCOUNTS.items():
            if name not in self.tokens:  # accounts and tokens survive a restart
                user = auth.create_user(name, None, role, CLI, scopes=scopes)
                self.tokens[name], _ = auth.create_token(user["id"], "test", CLI)
        assert await self.gateway.wait_subscribed(15)

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.aclose()
        if self.gateway is not None:
            await self.gateway.stop()

    def as_(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    async def put(self, user: str, device_id: str, **body: Any) -> httpx.Response:
        assert self.client is not None
        return await self.client.put(f"/api/devices/{device_id}", json=body, headers=self.as_(user))

    @property
    def gw(self) -> Gateway:
        assert self.gateway is not None
        return self.gateway


async def wait_until(predicate: Callable[[], bool], within_s: float = 15.0) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    broker = EmbeddedBroker(port=0)
    await broker.start()
    config_path = write_gateway_config(tmp_path, broker.port)
    write_sites(tmp_path / "sites")
    r = Running(config_path, broker.port)
    try:
        await r.start()
        yield r
    finally:
        await r.stop()
        await broker.stop()


def stored_devices(gw: Gateway) -> set[str]:
    with gw.engine.connect() as conn:
        return set(conn.execute(select(tables.events.c.device_id)).scalars())


async def publish(port: int, device: str, seq: int) -> None:
    def run() -> None:
        pub = Publisher(port, client_id=f"test-pub-{seq}")
        try:
            pub.publish([(topic(device), event_payload(seq, device))])
        finally:
            pub.close()

    await asyncio.to_thread(run)


async def test_added_device_is_stored_listed_used_at_once_and_kept(running: Running) -> None:
    gw = running.gw
    # unknown at first: quarantined (and the ingest look-up remembers it as unknown)
    await publish(running.broker_port, "door-new", 1)
    await wait_until(lambda: gw.normaliser.stats.rejected.get("unknown_device") == 1)

    r = await running.put(
        "pm", "door-new", site=SITE, kind="access", name="新门禁", place="b1-door",
        camera="cam-1", profile="lianfang", heartbeat_s=60, zone="",
    )  # fmt: skip
    assert r.status_code == 201, r.text
    saved = r.json()
    assert saved["action"] == "add" and saved["before"] is None
    assert saved["device"] | {"id": "door-new", "site": SITE, "registered": True} == saved["device"]
    assert saved["device"]["source"] == "console" and saved["device"]["profile"] == "lianfang"
    assert saved["device"]["zone"] is None  # an empty form field is "not set"

    listed = (await running.client.get("/api/devices", headers=running.as_("pm"))).json()  # type: ignore[union-attr]
    assert "door-new" in {d["id"] for d in listed["items"]}
    assert gw.device_labels("door-new") == {
        "kind": "access", "name": "新门禁", "place": "b1-door", "camera": "cam-1",
    }  # fmt: skip

    # the next message of the device is accepted and stored, not quarantined
    await publish(running.broker_port, "door-new", 2)
    await wait_until(lambda: "door-new" in stored_devices(gw))
    assert gw.normaliser.stats.rejected.get("unknown_device") == 1

    # an edit of a device from the site file answers 200 with the entry before
    r = await running.put("pm", "door-1", site=SITE, kind="access", name="东门（改）")
    assert r.status_code == 200, r.text
    assert r.json()["action"] == "edit"
    assert r.json()["before"] == {"site": SITE, "id": "door-1", "kind": "access", "name": "",
                                  "place": "b1-door"}  # fmt: skip

    # every change is in the audit log, with the answer (before and after)
    with gw.engine.connect() as conn:
        rows = conn.execute(
            select(audit_log.c.actor, audit_log.c.action, audit_log.c.status, audit_log.c.after)
            .where(audit_log.c.target.like("/api/devices/%"))
            .order_by(audit_log.c.id)
        ).all()
    assert [(a, s) for _, a, s, _ in rows] == [
        ("PUT /api/devices/{device_id:path}", 201),
        ("PUT /api/devices/{device_id:path}", 200),
    ]
    assert rows[0].actor == "pm"
    after = rows[1].after if isinstance(rows[1].after, dict) else json.loads(rows[1].after)
    assert after["response"]["before"]["name"] == "" and after["request"]["name"] == "东门（改）"

    # a restart keeps both: the console's record wins over the site file's entry
    await running.stop()
    await running.start()
    gw = running.gw
    assert gw.registry.device("door-new") is not None
    assert gw.registry.device("door-1")[1].name == "东门（改）"  # type: ignore[index]
    one = await running.client.get("/api/devices/door-1", headers=running.as_("pm"))  # type: ignore[union-attr]
    assert one.json()["name"] == "东门（改）" and one.json()["source"] == "console"
    await publish(running.broker_port, "door-new", 3)
    await wait_until(lambda: gw.writer.stats.stored >= 1)
    assert not gw.normaliser.stats.rejected


async def test_device_edits_are_scoped_and_validated(running: Running) -> None:
    access = {"kind": "access"}
    # another compound: adding answers 403, an existing device there is hidden (404)
    r = await running.put("pm", "x-1", site=OTHER, **access)
    assert r.status_code == 403, r.text
    r = await running.put("pm", "other-door", site=SITE, **access)
    assert r.status_code == 404, r.text
    r = await running.put("pm-other", "door-1", site=OTHER, **access)
    assert r.status_code == 404, r.text
    # a role without devices:write
    assert (await running.put("worker", "x-1", site=SITE, **access)).status_code == 403
    # nothing of it was stored or registered
    assert running.gw.registry.device("x-1") is None
    assert running.gw.registry.device("other-door")[0].id == OTHER  # type: ignore[index]

    async def reasons(device_id: str, **body: Any) -> dict[str, str]:
        r = await running.put("pm", device_id, **body)
        assert r.status_code == 422, r.text
        return {".".join(str(p) for p in d["loc"][1:]): d["msg"] for d in r.json()["detail"]}

    assert "place" in await reasons("x-1", site=SITE, kind="access", place="nowhere")
    assert (await reasons("x-1", site=SITE, kind="access", place="nowhere"))["place"] == (
        f"unknown place 'nowhere' in {SITE}"
    )
    assert (await reasons("x-1", site=SITE, kind="access", camera="cam-9"))["camera"] == (
        f"unknown device 'cam-9' in {SITE}"
    )
    assert (await reasons("x-1", site=SITE, kind="access", profile="acme"))["profile"].startswith(
        "unknown profile 'acme' (a new profile file is used within a few seconds"
    )
    assert "kind" in await reasons("x-1", site=SITE, kind="toaster")
    assert "heartbeat_s" in await reasons("x-1", site=SITE, kind="access", heartbeat_s=0)
    assert "colour" in await reasons("x-1", site=SITE, kind="access", colour="red")
    assert "device_id" in await reasons("bad+id", site=SITE, kind="access")
    # the id grammar (gateway/ids.py): quotes, markup, spaces, slashes are refused
    for bad in ('xx"><img src=x onerror=alert(1)>', "a b", "a/b", "-lead", "'q'"):
        assert "device_id" in await reasons(bad, site=SITE, kind="access"), bad
        assert running.gw.registry.device(bad) is None
    # names refuse NUL and bidirectional overrides (display spoofing)
    for name in ("门\u202egnp.exe", "a\x00b", "a\u2066b"):
        assert "name" in await reasons("x-2", site=SITE, kind="access", name=name)
    # an unknown site of the caller's own scope: the administrator sees every site
    r = await running.put("admin", "x-1", site="nowhere", kind="access")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "site"]
    assert running.gw.registry.device("x-1") is None


def device_rows(gw: Gateway) -> set[str]:
    with gw.engine.connect() as conn:
        return set(conn.execute(select(tables.devices.c.id)).scalars())


def offline_timers(gw: Gateway) -> set[str]:
    """Devices the shipped ``device_offline`` absence rule is timing."""
    state = gw.rules.engine._runtimes["device_offline"].cond
    assert isinstance(state, AbsenceState)
    return {s.freeze()[0].device_id for s in state.groups.values()}


async def test_console_device_is_deleted_and_then_unknown(running: Running) -> None:
    gw, client = running.gw, running.client
    assert client is not None
    r = await running.put("pm", "door-new", site=SITE, kind="access", place="b1-door")
    assert r.status_code == 201, r.text
    await publish(running.broker_port, "door-new", 1)
    await wait_until(lambda: "door-new" in stored_devices(gw))
    await wait_until(lambda: "door-new" in offline_timers(gw))  # the rules heard it

    async def delete(user: str, device_id: str) -> httpx.Response:
        return await client.delete(f"/api/devices/{device_id}", headers=running.as_(user))

    # a role without devices:write, another compound's manager (404, as for a missing id)
    assert (await delete("worker", "door-new")).status_code == 403
    assert (await delete("pm-other", "door-new")).status_code == 404
    assert (await delete("pm", "no-such-device")).status_code == 404
    # a device of the site file, even edited in the console: managed in the file (409)
    assert (
        await running.put("pm", "door-2", site=SITE, kind="access", name="改")
    ).status_code == 200
    for device_id in ("door-1", "door-2"):
        r = await delete("pm", device_id)
        assert r.status_code == 409, r.text
        assert "站点文件" in r.json()["detail"] and "managed in the site file" in r.json()["detail"]
        assert gw.registry.device(device_id) is not None
    # a camera other devices link to: unlink first
    assert (await running.put("pm", "cam-new", site=SITE, kind="perimeter")).status_code == 201
    r = await running.put("pm", "door-cam", site=SITE, kind="access", camera="cam-new")
    assert r.status_code == 201, r.text
    r = await delete("pm", "cam-new")
    assert r.status_code == 409 and "door-cam" in r.json()["detail"], r.text

    # the console's own device: 204, no longer registered, listed or timed; events kept
    r = await delete("pm", "door-new")
    assert r.status_code == 204, r.text
    assert gw.registry.device("door-new") is None
    assert gw.device_labels("door-new") is None
    assert "door-new" not in offline_timers(gw)
    assert (await client.get("/api/devices/door-new", headers=running.as_("pm"))).status_code == 404
    listed = (await client.get("/api/devices", headers=running.as_("pm"))).json()
    assert "door-new" not in {d["id"] for d in listed["items"]}
    assert "door-new" in stored_devices(gw)  # its events are evidence
    assert (await delete("pm", "door-new")).status_code == 404

    # its next message is an unknown device's (accept_unknown_devices is off): quarantined,
    # and no row comes back
    rejected = gw.normaliser.stats.rejected.get("unknown_device", 0)
    await publish(running.broker_port, "door-new", 2)
    await wait_until(lambda: gw.normaliser.stats.rejected.get("unknown_device") == rejected + 1)
    assert await asyncio.to_thread(gw.writer.flush)
    assert "door-new" not in device_rows(gw)
    with gw.engine.connect() as conn:
        quarantined = conn.execute(
            select(tables.quarantine.c.reason).where(tables.quarantine.c.device_id == "door-new")
        ).scalars().all()  # fmt: skip
    assert quarantined and set(quarantined) == {"unknown_device"}

    # audited: who removed what (the entry, as the row's "before"), and the refusals
    with gw.engine.connect() as conn:
        rows = conn.execute(
            select(audit_log.c.actor, audit_log.c.status, audit_log.c.before)
            .where(audit_log.c.action == "DELETE /api/devices/{device_id:path}")
            .order_by(audit_log.c.id)
        ).all()
    assert [(a, s) for a, s, _ in rows] == [
        ("worker", 403), ("pm-other", 404), ("pm", 404), ("pm", 409), ("pm", 409), ("pm", 409),
        ("pm", 204), ("pm", 404),
    ]  # fmt: skip
    before = rows[6].before if isinstance(rows[6].before, dict) else json.loads(rows[6].before)
    assert before == {"site": SITE, "id": "door-new", "kind": "access", "name": "",
                      "place": "b1-door"}  # fmt: skip

    # a restart does not bring it back; the site file's devices are all still there
    await running.stop()
    await running.start()
    gw = running.gw
    assert gw.registry.device("door-new") is None
    assert gw.registry.device("door-1") is not None and gw.registry.device("cam-new") is not None
    assert "door-new" in stored_devices(gw)


async def test_console_edits_keep_the_push_protocol_settings(running: Running) -> None:
    """The console's form has no fields for ``sia:``, ``gb28181:`` and ``password_env``: an
    edit keeps them (in use at once and after a restart), so a push device still
    authenticates; given explicitly, they are replaced or removed."""
    gw = running.gw
    r = await running.put("pm", "panel-1", site=SITE, kind="alarm", name="1号楼报警主机")
    assert r.status_code == 200, r.text
    panel = gw.registry.device("panel-1")[1]  # type: ignore[index]
    assert panel.name == "1号楼报警主机" and panel.password_env == "LF_TEST_PANEL_PW"
    assert panel.sia is not None and panel.sia.account == "1234"
    assert panel.sia.household_of("15", None) == "1-101"
    r = await running.put("pm", "31010800001320000001", site=SITE, kind="perimeter", name="南门")
    assert r.status_code == 200, r.text
    with gw.engine.connect() as conn:
        stored = dict(
            conn.execute(
                select(tables.devices.c.id, tables.devices.c.protocols).where(
                    tables.devices.c.source == "console"
                )
            ).all()
        )
    assert stored == {
        "panel-1": {"password_env": "LF_TEST_PANEL_PW",
                    "sia": {"account": "1234", "zones": {"15": "1-101"}, "users": {}}},
        "31010800001320000001": {"gb28181": {"password_env": "LF_TEST_GB_PW"}},
    }  # fmt: skip

    # a restart loads the console's record, blocks included
    await running.stop()
    await running.start()
    gw = running.gw
    panel = gw.registry.device("panel-1")[1]  # type: ignore[index]
    assert panel.name == "1号楼报警主机" and panel.sia is not None
    assert panel.password_env == "LF_TEST_PANEL_PW"
    camera = gw.registry.device("31010800001320000001")[1]  # type: ignore[index]
    assert camera.name == "南门" and camera.gb28181 is not None
    assert camera.gb28181.password_env == "LF_TEST_GB_PW"

    # given, they replace the entry's; null removes them
    r = await running.put(
        "admin", "panel-1", site=SITE, kind="alarm", sia={"account": "ABCD"}, password_env=None
    )
    assert r.status_code == 200, r.text
    panel = gw.registry.device("panel-1")[1]  # type: ignore[index]
    assert panel.sia is not None and panel.sia.account == "ABCD" and panel.password_env is None
    r = await running.put("admin", "panel-1", site=SITE, kind="alarm", sia=None)
    assert gw.registry.device("panel-1")[1].sia is None  # type: ignore[index]
    # and a bad block is a 422 naming it
    r = await running.put("admin", "panel-1", site=SITE, kind="alarm", sia={"account": "xyz!"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["body", "sia"]


async def test_console_rows_from_before_take_the_site_file_settings(running: Running) -> None:
    """A console row stored before the ``protocols`` column lost its device's blocks: the
    next start gives them back from the site-file entry; an entry the console stored without
    any (``{}``) is left so."""
    gw = running.gw
    for device_id in ("panel-1", "31010800001320000001"):
        r = await running.put("pm", device_id, site=SITE, kind="alarm", name="改")
        assert r.status_code == 200, r.text
    with gw.engine.begin() as conn:
        c = tables.devices.c
        conn.execute(tables.devices.update().where(c.id == "panel-1").values(protocols=None))
        conn.execute(
            tables.devices.update().where(c.id == "31010800001320000001").values(protocols={})
        )
    await running.stop()
    await running.start()
    panel = running.gw.registry.device("panel-1")[1]  # type: ignore[index]
    assert panel.name == "改" and panel.sia is not None and panel.sia.account == "1234"
    camera = running.gw.registry.device("31010800001320000001")[1]  # type: ignore[index]
    assert camera.name == "改" and camera.gb28181 is None
