"""Profiles and sites reload without a restart: a new profile's topics are subscribed and its
devices' messages stored at once, a device added to a site file is known at once, a broken
file is refused with its errors while the running set stays."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import select

from gateway.auth.roles import AccountRole
from gateway.auth.service import CLI
from gateway.config.settings import load_gateway_config
from gateway.runtime import Gateway
from gateway.server import build_app
from gateway.storage import tables
from tests.support.brokers import MosquittoBroker
from tests.support.compound import ROOT, SITE, Publisher, event_payload, topic, write_gateway_config

pytestmark = pytest.mark.broker

ACME = """
profile: acme-door
name: ACME door controller (a type added while the gateway runs)
mappings:
  - id: swipe
    topic: "acme/{device}/swipe"
    device_id: topic.device
    kind: access
    type: access_granted
    event_id: payload.id
    occurred_at: {expr: payload.t, format: epoch_s}
"""


async def wait_until(predicate: Callable[[], bool], within_s: float = 15.0) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.fixture
async def gateway(tmp_path: Path, mosquitto: MosquittoBroker) -> AsyncIterator[Gateway]:
    profiles = tmp_path / "profiles"
    shutil.copytree(ROOT / "config" / "profiles", profiles)
    path = write_gateway_config(tmp_path, mosquitto.port)
    config = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump(config | {"profiles_dir": str(profiles)}))
    gw = Gateway(load_gateway_config(path))
    gw.reloader.watch_every_s = 0.2  # the shipped 5 s, shortened for the test
    await gw.start()
    try:
        assert await gw.wait_subscribed(10)
        yield gw
    finally:
        await gw.stop()


def stored(gw: Gateway) -> list[tuple[str, str]]:
    with gw.engine.connect() as conn:
        rows = conn.execute(select(tables.events.c.device_id, tables.events.c.source))
        return [(r.device_id, r.source) for r in rows]


async def publish(port: int, items: list[tuple[str, bytes]]) -> None:
    await asyncio.to_thread(lambda: Publisher(port, client_id="reload-pub").publish(items))


async def test_a_new_profile_and_device_are_used_without_a_restart(
    gateway: Gateway, mosquitto: MosquittoBroker
) -> None:
    config = gateway.config
    site_file = next(config.sites_dir.glob("*.yaml"))
    site = yaml.safe_load(site_file.read_text())
    site["devices"].append({"id": "acme-1", "kind": "access", "profile": "acme-door"})
    site_file.write_text(yaml.safe_dump(site, allow_unicode=True))
    (config.profiles_dir / "acme.yaml").write_text(ACME)
    # picked up by the watch: no call, no restart
    await wait_until(lambda: any(a.name == "acme-door" for a in gateway.adapters))
    await wait_until(lambda: gateway.registry.device("acme-1") is not None)
    assert "acme/+/swipe" in gateway.consumer._topics  # subscribed on the live connection
    await publish(
        mosquitto.port, [("acme/acme-1/swipe", json.dumps({"id": "s1", "t": time.time()}).encode())]
    )
    await wait_until(lambda: ("acme-1", "acme-door") in stored(gateway))
    assert gateway.normaliser.stats.rejected == {}


async def test_a_broken_profile_is_refused_and_the_running_set_stays(
    gateway: Gateway, mosquitto: MosquittoBroker
) -> None:
    before = sorted(a.name for a in gateway.adapters)
    (gateway.config.profiles_dir / "broken.yaml").write_text("profile: broken\nmappings: 3\n")
    report = await gateway.reloader.reload()
    assert report.errors and any("broken.yaml" in e.file for e in report.errors)
    assert sorted(a.name for a in gateway.adapters) == before
    assert gateway.reloader.last_errors == report.errors
    await publish(mosquitto.port, [(topic("door-1"), event_payload(7, "door-1"))])
    await wait_until(lambda: ("door-1", "lianfang") in stored(gateway))


async def test_reload_over_the_api_needs_the_right_and_says_what_changed(
    gateway: Gateway,
) -> None:
    app = await build_app(gateway)
    auth = app.state.auth
    tokens = {}
    for name, role in (("pm", AccountRole.PROPERTY_MANAGER), ("worker", AccountRole.GRID_WORKER)):
        user = auth.create_user(name, None, role, CLI, scopes={"sites": [SITE]})
        tokens[name], _ = auth.create_token(user["id"], "test", CLI)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        assert (await client.post("/api/config/reload")).status_code == 401
        denied = await client.post(
            "/api/config/reload", headers={"Authorization": f"Bearer {tokens['worker']}"}
        )
        assert denied.status_code == 403
        (gateway.config.profiles_dir / "acme.yaml").write_text(ACME)
        done = await client.post(
            "/api/config/reload", headers={"Authorization": f"Bearer {tokens['pm']}"}
        )
        assert done.status_code == 200, done.text
        body = done.json()
        assert body["ok"] and "acme-door" in body["profiles"]
        assert body["subscribed"] == ["acme/+/swipe"]
        (gateway.config.profiles_dir / "acme.yaml").write_text("profile: acme-door\n")
        refused = await client.post(
            "/api/config/reload", headers={"Authorization": f"Bearer {tokens['pm']}"}
        )
        assert refused.status_code == 422 and refused.json()["errors"]
