"""The demo's simulated push devices speak GA/T 1400 and ISAPI as the receivers expect: every
push of the demo compound's three devices is accepted and becomes events with pictures."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from device_adapters.registry import load_adapters
from gateway.config.settings import IngestConfig
from gateway.config.sites import load_sites
from gateway.demo.devices import PASSWORD_ENV
from gateway.demo.simulator.http_push import push_devices, run_push_devices
from gateway.receivers.gat1400 import routes as gat1400_routes
from gateway.receivers.gat1400.config import Gat1400Config
from gateway.receivers.gat1400.service import Gat1400Service
from gateway.receivers.httppush.intake import PushIntake
from gateway.receivers.isapi import routes as isapi_routes
from gateway.receivers.isapi.config import IsapiConfig
from gateway.receivers.isapi.service import IsapiService
from tests.receivers.push_harness import ROOT, stack


async def test_demo_push_devices_are_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "demo-password")
    site = load_sites(ROOT / "config" / "sites").sites["demo-compound"]
    with stack(tmp_path) as s:
        s.registry = load_sites(ROOT / "config" / "sites")

        def intake(name: str) -> PushIntake:
            return PushIntake(
                name, load_adapters(ROOT / "config" / "profiles"), s.registry, IngestConfig(),
                publish=s.bus.publish_many, submit=s.writer.submit_many, evidence=s.store,
            )  # fmt: skip

        app = FastAPI()
        gat1400 = Gat1400Service(
            Gat1400Config(enabled=True), s.registry, intake("gat1400"), timezone="Asia/Shanghai"
        )
        app.include_router(gat1400_routes.router)
        app.include_router(isapi_routes.router)
        app.state.gat1400 = gat1400
        app.state.isapi = IsapiService(IsapiConfig(enabled=True), s.registry, intake("isapi"))
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 9000))
        stats = await run_push_devices(
            site, "http://gw", "demo-password", rate=60, seed=3, stop=asyncio.Event(),
            duration=3, transport=transport,
        )  # fmt: skip
        assert stats.refused == 0 and stats.failed == 0
        assert stats.accepted == stats.posted > 0
        events = s.events()
        by_device = {(e["device_id"], e["type"]) for e in events}
        expected = {d.id for d in push_devices(site)}
        assert {d for d, _ in by_device} == expected
        assert {t for _, t in by_device} >= {"online", "heartbeat", "plate_read"}
        assert s.quarantine() == []
        with_pictures = [e for e in events if "snapshot" in e["attributes"].get("extra", {})]
        assert {e["device_id"] for e in with_pictures} == expected
