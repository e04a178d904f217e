"""Both receivers inside a running Gateway (shipped rules, routing and grid; SQLite): what
issue 17 judges, with the answer on the wire checked against the database at that moment —
stored before acknowledged."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, select

from gateway.config.settings import load_gateway_config
from gateway.demo.simulator.gb28181_camera import SimulatedCamera
from gateway.demo.simulator.sia_panel import send_frame
from gateway.incidents.tables import incidents
from gateway.receivers.sia import frame as f
from gateway.runtime import Gateway
from gateway.storage import tables
from tests.support.brokers import MosquittoBroker

pytestmark = [pytest.mark.broker, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
CAMERA, SERVER_ID, DOMAIN = "31010800001320000001", "31010800002000000001", "3101080000"


@pytest.fixture
async def gateway(
    tmp_path: Path, mosquitto: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Gateway]:
    monkeypatch.setenv("LIANFANG_DEMO_DEVICE_PASSWORD", "demo-pw")
    config = {
        "data_dir": str(tmp_path / "data"),
        "mqtt": {"host": "127.0.0.1", "port": mosquitto.port, "client_id": "lf-receivers-test"},
        "database": {"url": f"sqlite:///{tmp_path / 'data' / 'lf.db'}", "batch_interval_ms": 20},
        "profiles_dir": str(ROOT / "config" / "profiles"),
        "sites_dir": str(ROOT / "config" / "sites"),
        "rules_dir": str(ROOT / "config" / "rules"),
        "routing_file": str(ROOT / "config" / "routing.yaml"),
        "grid_dir": str(ROOT / "config" / "grid"),
        "sia": {"enabled": True, "port": 0},
        "gb28181": {"enabled": True, "port": 0, "server_id": SERVER_ID, "domain": DOMAIN},
    }
    path = tmp_path / "lianfang.yaml"
    path.write_text(yaml.safe_dump(config))
    gw = Gateway(load_gateway_config(path), protocol="v311")
    await gw.start()
    try:
        yield gw
    finally:
        await gw.stop()


def rows(engine: Engine, query):  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return conn.execute(query).all()


async def test_sia_panic_is_acked_only_once_event_and_p1_incident_are_stored(
    gateway: Gateway,
) -> None:
    assert gateway.sia is not None and gateway.sia.tcp_port
    answer = await send_frame(
        "127.0.0.1", gateway.sia.tcp_port, f.build_frame("ADM-CID", 1120, "1234", "1120 01 015")
    )
    assert answer is not None and b'"ACK"1120R1L1#1234[]' in answer
    # at the moment of the ACK: the event and its P1 incident are in the database
    (event,) = rows(
        gateway.engine, select(tables.events).where(tables.events.c.device_id == "panel-1234")
    )
    assert event.type == "panic"
    (incident,) = rows(gateway.engine, select(incidents).where(incidents.c.category == "panic"))
    assert incident.severity == "P1" and incident.household == "3-1-301"
    assert "3-1-301" in incident.title_zh


async def test_sia_bad_crc_stored_nowhere_null_acked(gateway: Gateway) -> None:
    assert gateway.sia is not None and gateway.sia.udp_port
    raw = bytearray(f.build_frame("ADM-CID", 2, "1234", "1120 01 015"))
    raw[-4] ^= 0x02
    answer = await send_frame("127.0.0.1", gateway.sia.udp_port, bytes(raw), transport="udp")
    assert answer is None or b'"NAK"' in answer
    null = await send_frame(
        "127.0.0.1", gateway.sia.udp_port, f.build_frame("NULL", 3, "1234", ""), transport="udp"
    )
    assert null is not None and b'"ACK"0003' in null
    types = [r.type for r in rows(gateway.engine, select(tables.events.c.type))]
    assert types == ["heartbeat"]  # the NULL; the broken panic nowhere
    assert gateway.writer.flush()
    (q,) = rows(gateway.engine, select(tables.quarantine))
    assert q.reason == "bad_crc"
    assert rows(gateway.engine, select(incidents)) == []


async def test_gb28181_register_keepalive_alarm_stored(gateway: Gateway) -> None:
    assert gateway.gb28181 is not None
    port = gateway.gb28181.transport.udp_port or 0
    cam = SimulatedCamera(
        CAMERA, server_id=SERVER_ID, domain=DOMAIN, password="demo-pw", host="127.0.0.1", port=port
    )
    wrong = SimulatedCamera(
        CAMERA, server_id=SERVER_ID, domain=DOMAIN, password="nope", host="127.0.0.1", port=port
    )
    await cam.open()
    await wrong.open()
    try:
        assert await wrong.register() == 403
        assert await cam.register() == 200
        assert await cam.keepalive() == 200
        assert await cam.alarm(method=5, alarm_type=6, priority=1) == 200
        stored = rows(
            gateway.engine,
            select(tables.events.c.type)
            .where(tables.events.c.device_id == CAMERA)
            .order_by(tables.events.c.seq),
        )
        assert [r.type for r in stored] == ["online", "heartbeat", "intrusion"]
    finally:
        cam.close()
        wrong.close()


async def test_sia_panic_of_an_unknown_account_is_raised_and_acked(gateway: Gateway) -> None:
    """Issue 14: a panic from a panel the registry does not know is a P1 incident marked
    unregistered (and stays in the quarantine), ACKed once that incident is stored."""
    assert gateway.sia is not None and gateway.sia.tcp_port
    answer = await send_frame(
        "127.0.0.1", gateway.sia.tcp_port, f.build_frame("ADM-CID", 7, "9999", "1120 01 003")
    )
    assert answer is not None and b'"ACK"0007' in answer
    (incident,) = rows(gateway.engine, select(incidents))
    assert incident.severity == "P1" and incident.category == "panic"
    assert "未登记" in incident.title_zh and "sia:9999" in incident.title_zh
    assert gateway.writer.flush()
    reasons = [q.reason for q in rows(gateway.engine, select(tables.quarantine))]
    assert reasons == ["unknown_device"]


async def test_gb28181_alarm_of_an_unregistered_device_is_raised(gateway: Gateway) -> None:
    assert gateway.gb28181 is not None
    port = gateway.gb28181.transport.udp_port or 0
    stranger = "31010800001320000099"  # in no site file
    cam = SimulatedCamera(
        stranger, server_id=SERVER_ID, domain=DOMAIN, password="x", host="127.0.0.1", port=port
    )
    await cam.open()
    try:
        assert await cam.alarm(method=1, alarm_type=1, priority=1) == 200
    finally:
        cam.close()
    (incident,) = rows(gateway.engine, select(incidents))
    assert incident.severity == "P1" and stranger in incident.title_zh
