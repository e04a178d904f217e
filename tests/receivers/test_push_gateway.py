"""The push receivers inside a running gateway (embedded broker, SQLite, rules, incidents,
the API app): what the demo is judged on, black-box over HTTP — a GA/T 1400 device registers
with digest, keeps alive, posts a MotorVehicleListObject (StatusCode 0) stored as a gate
event with its picture as evidence; posts without authentication get 401 — and a panic
pushed over ISAPI is answered only once its incident is stored."""

from __future__ import annotations

import asyncio
import base64
import shutil
import time
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import yaml
from sqlalchemy import select

from gateway.audit.tables import audit_log
from gateway.auth.roles import AccountRole
from gateway.auth.service import CLI
from gateway.config.settings import load_gateway_config
from gateway.demo.broker import EmbeddedBroker
from gateway.incidents.tables import incident_attachments, incidents
from gateway.runtime import Gateway
from gateway.server import build_app
from tests.receivers.push_harness import PASSWORD, PASSWORD_ENV, ROOT, jpeg

pytestmark = [pytest.mark.broker, pytest.mark.slow]

SITE = "push-compound"
CAMERA = "31010800001190000002"
PANIC_UNIT = "acs-panic-1"
RECORD = "310108000011900000020220261122210300000010200001"

# A profile of the test only: an access controller's emergency button as a household alarm.
PANIC_PROFILE = {
    "profile": "test-isapi-panic",
    "name": "test",
    "mappings": [{
        "id": "button", "topic": "testpanic/{device}/event", "device_id": "topic.device",
        "when": "payload.eventType == 'AccessControllerEvent'",
        "kind": "alarm", "type": "panic", "event_id": "payload.AccessControllerEvent.serialNo",
        "occurred_at": {"expr": "payload.dateTime", "format": "iso8601"},
    }],
}  # fmt: skip


def write_config(tmp: Path, port: int) -> Path:
    sites = tmp / "sites"
    sites.mkdir()
    env = {"password_env": PASSWORD_ENV}
    devices = [
        {"id": CAMERA, "kind": "gate", "profile": "gat1400", **env},
        {"id": PANIC_UNIT, "kind": "alarm", "household": "1-101", **env},
    ]
    (sites / "push.yaml").write_text(yaml.safe_dump({"id": SITE, "devices": devices}))
    profiles = tmp / "profiles"
    shutil.copytree(ROOT / "config" / "profiles", profiles)
    (profiles / "test-isapi-panic.yaml").write_text(yaml.safe_dump(PANIC_PROFILE))
    config = {
        "data_dir": str(tmp / "data"),
        "mqtt": {"host": "127.0.0.1", "port": port, "client_id": "push-test"},
        "database": {"url": f"sqlite:///{tmp / 'data' / 'lianfang.db'}", "batch_interval_ms": 50},
        "profiles_dir": str(profiles),
        "sites_dir": str(sites),
        "rules_dir": str(ROOT / "config" / "rules"),
        "routing_file": str(ROOT / "config" / "routing.yaml"),
        "grid_dir": str(tmp / "grid"),
        "gat1400": {"enabled": True},
        "isapi": {"enabled": True, "topic": "testpanic/{device}/event"},
    }
    path = tmp / "lianfang.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class Running:
    def __init__(self, gateway: Gateway, client: httpx.AsyncClient, token: str) -> None:
        self.gateway = gateway
        self.client = client
        self.admin = {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Running]:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    broker = EmbeddedBroker(port=0)
    await broker.start()
    gateway = Gateway(load_gateway_config(write_config(tmp_path, broker.port)), protocol="v311")
    await gateway.start()
    try:
        app = await build_app(gateway)
        user = app.state.auth.create_user("admin", None, AccountRole.ADMINISTRATOR, CLI)
        token, _ = app.state.auth.create_token(user["id"], "test", CLI)
        transport = httpx.ASGITransport(app=app, client=("10.0.0.5", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
            yield Running(gateway, client, token)
    finally:
        await gateway.stop()
        await broker.stop()


def motor_vehicles() -> dict[str, Any]:
    record = {
        "MotorVehicleID": RECORD, "DeviceID": CAMERA, "HasPlate": "1", "PlateColor": "5",
        "PlateNo": "沪A12345", "PassTime": "20261122210300",
        "SubImageList": {"SubImageInfoObject": [
            {"Type": "01", "FileFormat": "Jpeg", "Data": base64.b64encode(jpeg(5000)).decode()}]},
    }  # fmt: skip
    return {"MotorVehicleListObject": {"MotorVehicleObject": [record]}}


async def test_gat1400_device_black_box(running: Running) -> None:
    http = running.client
    unauthenticated = await http.post("/VIID/MotorVehicles", json=motor_vehicles())
    assert unauthenticated.status_code == 401
    device = httpx.DigestAuth(CAMERA, PASSWORD)
    registered = await http.post(
        "/VIID/System/Register", json={"RegisterObject": {"DeviceID": CAMERA}}, auth=device
    )
    assert registered.status_code == 200
    assert registered.json()["ResponseStatusObject"]["StatusCode"] == "0"
    ident = {"User-Identify": CAMERA, "Content-Type": "application/VIID+JSON"}
    keepalive = await http.post(
        "/VIID/System/Keepalive", json={"KeepaliveObject": {"DeviceID": CAMERA}}, headers=ident
    )
    assert keepalive.json()["ResponseStatusObject"]["StatusCode"] == "0"
    posted = await http.post("/VIID/MotorVehicles", json=motor_vehicles(), headers=ident)
    assert posted.status_code == 200
    (status,) = posted.json()["ResponseStatusListObject"]["ResponseStatusObject"]
    assert (status["StatusCode"], status["Id"]) == ("0", RECORD)
    # Stored before the answer: the API sees it at once.
    events = (
        await http.get("/api/events", params={"device_id": CAMERA}, headers=running.admin)
    ).json()
    plates = [e for e in events["items"] if e["type"] == "plate_read"]
    assert [(e["kind"], e["site"]) for e in plates] == [("gate", SITE)]
    event_id = f"gat1400:{CAMERA}:{RECORD}"
    assert plates[0]["event_id"] == event_id
    evidence = (
        await http.get("/api/evidence", params={"ref": event_id}, headers=running.admin)
    ).json()
    assert [e["method"] for e in evidence] == ["push"]
    image = await http.get(evidence[0]["image_url"], headers=running.admin)
    assert image.status_code == 200 and image.content == jpeg(5000)
    # Device traffic is quarantined when refused, not written to the audit log.
    with running.gateway.engine.connect() as conn:
        targets = [r.target for r in conn.execute(select(audit_log.c.target))]
    assert not [t for t in targets if t.startswith("/VIID")]
    quarantine = (await http.get("/api/quarantine", headers=running.admin)).json()
    assert [q["reason"] for q in quarantine["items"]] == ["unauthenticated"]


async def test_isapi_panic_answered_after_its_incident_is_stored(running: Running) -> None:
    press = {
        "dateTime": "2026-11-22T21:03:00+08:00", "eventType": "AccessControllerEvent",
        "AccessControllerEvent": {"majorEventType": 1, "subEventType": 1052, "serialNo": 4242},
    }  # fmt: skip
    answer = await running.client.post(
        f"/isapi/events/{PANIC_UNIT}", json=press, auth=httpx.DigestAuth(PANIC_UNIT, PASSWORD)
    )
    assert answer.status_code == 200, answer.text
    with running.gateway.engine.connect() as conn:
        stored = [list(r.event_ids) for r in conn.execute(select(incidents.c.event_ids))]
    assert [f"test-isapi-panic:{PANIC_UNIT}:4242"] in stored
    assert len(running.gateway.push_gate) == 0


async def test_pushed_picture_follows_its_event_into_the_incident(running: Running) -> None:
    """A watch-listed plate (config/rules/watchlists/plates.txt) read by a GA/T 1400 camera
    opens an incident; the record's picture is attached to it, as camera snapshots are."""
    body = motor_vehicles()
    record = body["MotorVehicleListObject"]["MotorVehicleObject"][0]
    record["PlateNo"] = "浙A0000X"
    # read now: a record that arrives late is used by panic and absence rules only
    record["PassTime"] = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y%m%d%H%M%S")
    posted = await running.client.post(
        "/VIID/MotorVehicles", json=body, auth=httpx.DigestAuth(CAMERA, PASSWORD)
    )
    assert posted.json()["ResponseStatusListObject"]["ResponseStatusObject"][0]["StatusCode"] == "0"
    deadline = time.monotonic() + 20
    attached: list[Any] = []
    while not attached:
        assert time.monotonic() < deadline, "the picture was not attached to the incident"
        await asyncio.sleep(0.1)
        with running.gateway.engine.connect() as conn:
            attached = list(conn.execute(select(incident_attachments)))
    (attachment,) = attached
    assert attachment.size == len(jpeg(5000))


async def test_isapi_panic_of_an_unknown_sender_is_refused_but_raised(running: Running) -> None:
    """The unknown device is answered 403 and quarantined, and its panic becomes a P1
    incident marked unregistered all the same (issue 14: never dropped)."""
    press = {
        "dateTime": "2026-11-22T21:03:00+08:00", "eventType": "AccessControllerEvent",
        "AccessControllerEvent": {"majorEventType": 1, "subEventType": 1052, "serialNo": 77},
    }  # fmt: skip
    answer = await running.client.post(
        "/isapi/events/acs-stranger-9", json=press, auth=httpx.DigestAuth("acs-stranger-9", "x")
    )
    assert answer.status_code in (401, 403)
    deadline = time.monotonic() + 20
    raised: list[Any] = []
    while not raised:
        assert time.monotonic() < deadline, "the unregistered panic raised no incident"
        await asyncio.sleep(0.1)
        with running.gateway.engine.connect() as conn:
            raised = list(conn.execute(select(incidents.c.severity, incidents.c.title_zh)))
    ((severity, title),) = raised
    assert severity == "P1" and "未登记" in title and "acs-stranger-9" in title
