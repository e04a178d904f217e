"""The simulated compound: payloads the lianfang profile accepts, seeded traffic, a live run."""

from __future__ import annotations

import asyncio
import json
import queue
import re
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import typer
from paho.mqtt.enums import CallbackAPIVersion
from typer.testing import CliRunner

from device_adapters.base import DeviceInfo, Message
from device_adapters.profiles import ProfileAdapter, load_profiles
from gateway.cli import simulate_cmd
from gateway.config.sites import SiteConfig, SiteRegistry, load_sites
from gateway.demo.broker import EmbeddedBroker
from gateway.demo.simulator import SCENARIOS, FleetModel, OutMessage, run_simulator
from gateway.demo.simulator import payloads as p
from gateway.demo.simulator.model import mqtt_devices
from gateway.events import DeviceKind, Direction, Event, EventType, PlateColour

ROOT = Path(__file__).resolve().parent.parent
NIGHT = datetime(2026, 11, 22, 2, 0, tzinfo=p.CHINA_TZ)
DAY = datetime(2026, 11, 22, 10, 0, tzinfo=p.CHINA_TZ)
WAIT = 20.0  # upper bound against hangs only


@pytest.fixture(scope="module")
def registry() -> SiteRegistry:
    return load_sites(ROOT / "config" / "sites")


@pytest.fixture(scope="module")
def site(registry: SiteRegistry) -> SiteConfig:
    return registry.sites["demo-compound"]


@pytest.fixture(scope="module")
def adapter() -> ProfileAdapter:
    profiles = load_profiles(ROOT / "config" / "profiles")
    profile = next(pr for pr in profiles if pr.profile == "lianfang")
    return ProfileAdapter(profile)


def normalise(
    adapter: ProfileAdapter, registry: SiteRegistry, topic: str, payload: bytes, at: datetime
) -> Event:
    def lookup(device_id: str) -> DeviceInfo | None:
        found = registry.device(device_id)
        return None if found is None else DeviceInfo(site=found[0].id, kind=found[1].kind)

    decoded: Any = payload.decode()
    if adapter.payload_format(topic) == "json":
        decoded = json.loads(decoded)
    message = Message(
        topic=topic,
        payload=decoded,
        raw=payload,
        received_at=at.astimezone(UTC) + timedelta(seconds=1),
    )
    events = adapter.normalise(message, lookup)
    assert len(events) == 1
    return events[0]


def normalise_out(
    adapter: ProfileAdapter, registry: SiteRegistry, model: FleetModel, m: OutMessage
) -> Event:
    # Received "now" relative to the model's clock, so device times are never in the future.
    return normalise(adapter, registry, m.topic, m.payload, model.start + timedelta(days=1))


# -- payload builders ----------------------------------------------------------------------


def test_topics_and_envelope() -> None:
    ts = datetime(2026, 11, 22, 21, 3, tzinfo=p.CHINA_TZ)
    payload = p.event_payload(42, ts, DeviceKind.ACCESS, EventType.ACCESS_DENIED, {"door": "3-1"})
    assert payload == {
        "v": 1,
        "seq": 42,
        "ts": "2026-11-22T21:03:00.000+08:00",
        "kind": "access",
        "type": "access_denied",
        "attrs": {"door": "3-1"},
    }
    assert p.event_topic("s", "d") == "lianfang/s/d/event"
    assert p.status_topic("s", "d") == "lianfang/s/d/status"
    assert "浙" in p.encode({"plate": "浙JA12345"}).decode()
    with pytest.raises(ValueError):
        p.format_ts(datetime(2026, 1, 1))


BUILDERS: list[tuple[str, DeviceKind, EventType, p.Attrs]] = [
    ("door-b1u1", DeviceKind.ACCESS, EventType.ACCESS_GRANTED,
     p.access_attrs("b1-u1-door", Direction.IN, "0012345678", zone="1号楼")),
    ("door-b1u1", DeviceKind.ACCESS, EventType.ACCESS_DENIED,
     p.access_attrs("b1-u1-door", Direction.IN, "0087654321")),
    ("door-b1u1", DeviceKind.ACCESS, EventType.DOOR_FORCED_OPEN, p.access_attrs("b1-u1-door")),
    ("gate-north", DeviceKind.GATE, EventType.PLATE_READ,
     p.gate_attrs("浙JA12345", PlateColour.BLUE, Direction.IN, 0.97, lane="入口", zone="北门")),
    ("gate-north", DeviceKind.GATE, EventType.VEHICLE_DENIED,
     p.gate_attrs("苏E8D123", PlateColour.GREEN, Direction.IN, 0.91)),
    ("cam-north", DeviceKind.PERIMETER, EventType.INTRUSION,
     p.perimeter_attrs("北侧围墙", "person", 0.93, "t7")),
    ("panic-1-101", DeviceKind.ALARM, EventType.PANIC, p.alarm_attrs("1-1-101", battery=80)),
    ("panic-1-101", DeviceKind.ALARM, EventType.BATTERY_LOW, p.alarm_attrs("1-1-101", battery=9)),
    ("cam-west", DeviceKind.PERIMETER, EventType.HEARTBEAT, p.health_attrs(zone="西侧围墙")),
]  # fmt: skip


@pytest.mark.parametrize(("device", "kind", "type_", "attrs"), BUILDERS)
def test_builders_normalise_to_events(
    adapter: ProfileAdapter,
    registry: SiteRegistry,
    device: str,
    kind: DeviceKind,
    type_: EventType,
    attrs: p.Attrs,
) -> None:
    payload = p.encode(p.event_payload(7, DAY, kind, type_, attrs))
    event = normalise(adapter, registry, p.event_topic("demo-compound", device), payload, DAY)
    assert (event.site, event.device_id, event.kind, event.type) == (
        "demo-compound",
        device,
        kind,
        type_,
    )
    assert event.event_id == f"lianfang:{device}:7"
    assert event.occurred_at == DAY.astimezone(UTC)
    if "card" in attrs:
        assert event.attributes.card_ref.startswith("card:")  # type: ignore[union-attr]
        assert str(attrs["card"]) not in event.raw  # pseudonymised, masked in the raw copy
    if "plate" in attrs:
        assert event.attributes.plate == attrs["plate"]  # type: ignore[union-attr]


@pytest.mark.parametrize(("body", "type_"), [(b"online", "online"), (b"offline", "offline")])
def test_status_normalises(
    adapter: ProfileAdapter, registry: SiteRegistry, body: bytes, type_: str
) -> None:
    topic = p.status_topic("demo-compound", "panic-1-101")
    event = normalise(adapter, registry, topic, body, DAY)
    assert (event.kind, event.type) == (DeviceKind.ALARM, EventType(type_))


def test_plates_look_real() -> None:
    import random

    rng = random.Random(3)
    blue = re.compile(r"^[\u4e00-\u9fff][A-HJ-NP-Z][A-HJ-NP-Z0-9]{5}$")
    green = re.compile(r"^[\u4e00-\u9fff][A-HJ-NP-Z][DF][A-HJ-NP-Z0-9][0-9]{4}$")
    for _ in range(500):
        assert blue.match(p.random_plate(rng, PlateColour.BLUE))
        assert green.match(p.random_plate(rng, PlateColour.GREEN))
    prefixes = Counter(p.random_plate(rng, PlateColour.BLUE)[:2] for _ in range(1000))
    assert prefixes.most_common(1)[0][0] == "浙J"
    assert re.fullmatch(r"\d{10}", p.random_card(rng))


# -- the fleet model -----------------------------------------------------------------------


def run_model(
    site: SiteConfig, start: datetime, seconds: float, seed: int = 1
) -> tuple[FleetModel, list[OutMessage]]:
    model = FleetModel(site, rate=1.0, seed=seed, start=start)
    return model, model.start_messages() + model.due(seconds)


def test_model_is_deterministic(site: SiteConfig) -> None:
    _, a = run_model(site, DAY, 600)
    _, b = run_model(site, DAY, 600)
    _, c = run_model(site, DAY, 600, seed=2)
    assert a == b
    assert a != c


def test_twenty_minutes_of_traffic_normalise(
    adapter: ProfileAdapter, registry: SiteRegistry, site: SiteConfig
) -> None:
    seen: set[tuple[DeviceKind, EventType]] = set()
    for start in (DAY, NIGHT):
        model, messages = run_model(site, start, 1200)
        last_seq: dict[str, int] = defaultdict(int)
        for m in messages:
            event = normalise_out(adapter, registry, model, m)
            assert event.kind == m.kind
            if m.type == "status":
                assert event.type in (EventType.ONLINE, EventType.OFFLINE)
            else:
                assert event.type.value == m.type
            seen.add((event.kind, event.type))
            if m.type != "status":
                seq = json.loads(m.payload)["seq"]
                assert seq > last_seq[m.device_id]  # every device counts its own messages
                last_seq[m.device_id] = seq
        # Every registered device, and only those, speaks.
        assert {m.device_id for m in messages} == {d.id for d in mqtt_devices(site)}
    for kind in (DeviceKind.ACCESS, DeviceKind.GATE, DeviceKind.PERIMETER, DeviceKind.ALARM):
        assert (kind, EventType.HEARTBEAT) in seen
        assert (kind, EventType.ONLINE) in seen
    for expected in [
        (DeviceKind.ACCESS, EventType.ACCESS_GRANTED),
        (DeviceKind.ACCESS, EventType.ACCESS_DENIED),
        (DeviceKind.GATE, EventType.PLATE_READ),
        (DeviceKind.GATE, EventType.VEHICLE_DENIED),
        (DeviceKind.PERIMETER, EventType.MOTION),
        (DeviceKind.PERIMETER, EventType.LINE_CROSSING),
    ]:
        assert expected in seen


EXPECTED_SCENARIO_TYPES: dict[str, set[str]] = {
    "door_forced_open": {"door_forced_open", "door_closed"},
    "door_held_open": {"access_granted", "door_open", "door_held_open", "door_closed"},
    "repeated_denials": {"access_denied"},
    "intrusion": {"line_crossing", "intrusion"},
    "tamper": {"tamper"},
    "video_loss": {"video_loss"},
    "battery_low": {"battery_low"},
    "device_offline": {"status", "heartbeat"},
    "panic": {"panic"},
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_scenario_normalises(
    adapter: ProfileAdapter, registry: SiteRegistry, site: SiteConfig, scenario: str
) -> None:
    assert scenario in EXPECTED_SCENARIO_TYPES  # a new scenario needs its expectations here
    model = FleetModel(site, rate=1.0, seed=5, start=NIGHT, background=False)
    model.due(10)
    messages = [m for m in model.inject(scenario, 10) + model.due(3600) if m.scenario == scenario]
    types = {m.type for m in messages}
    assert EXPECTED_SCENARIO_TYPES[scenario] <= types
    kinds = SCENARIOS[scenario].kinds
    for m in messages:
        event = normalise_out(adapter, registry, model, m)
        assert event.kind in kinds
    if scenario == "repeated_denials":
        assert len(messages) >= 4
        assert len({m.device_id for m in messages}) == 1
        cards = {json.loads(m.payload)["attrs"]["card"] for m in messages}
        assert len(cards) == 1
    if scenario == "device_offline":
        statuses = [m.payload for m in messages if m.type == "status"]
        assert statuses == [b"offline", b"online"]
        assert all(m.retain for m in messages if m.type == "status")
    if scenario == "battery_low":
        (m,) = messages
        assert json.loads(m.payload)["attrs"]["battery"] <= 15


def test_offline_device_is_silent_until_back(site: SiteConfig) -> None:
    model = FleetModel(site, rate=20.0, seed=9, start=DAY, background=False)
    model.due(5)
    first = model.inject("device_offline", 5, device_id="gate-north")
    assert [m.payload for m in first] == [b"offline"]
    later = model.due(100)  # back within 6 heartbeat periods (30 s / rate 20)
    gate = [m for m in later if m.device_id == "gate-north"]
    back = next(i for i, m in enumerate(gate) if m.payload == b"online")
    assert all(m.type == "status" for m in gate[: back + 1])
    assert gate[back + 1].type == "heartbeat"


def test_stop_marks_every_device_offline(site: SiteConfig) -> None:
    model = FleetModel(site, rate=1.0, seed=1, start=DAY)
    stop = model.stop_messages()
    assert {m.device_id for m in stop} == {d.id for d in mqtt_devices(site)}
    assert all(m.retain and m.payload == b"offline" for m in stop)


def test_rate_scales_heartbeats(site: SiteConfig) -> None:
    def beats(rate: float) -> int:
        model = FleetModel(site, rate=rate, seed=1, start=DAY)
        return sum(m.type == "heartbeat" for m in model.due(600))

    assert beats(10.0) > 5 * beats(1.0)
    assert beats(0.1) == pytest.approx(beats(1.0), rel=0.3)  # never slower than registered


# -- live: the fleet against the embedded broker -------------------------------------------


class Recorder:
    def __init__(self, port: int) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="recorder")
        self.client.on_connect = lambda c, u, f, r, pr: c.subscribe("lianfang/#", qos=1)
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_message = lambda c, u, m: self.messages.put(m)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def drain(self) -> Iterator[mqtt.MQTTMessage]:
        while True:
            try:
                yield self.messages.get_nowait()
            except queue.Empty:
                return


@pytest.mark.broker
async def test_fleet_publishes_all_kinds_to_a_broker(
    adapter: ProfileAdapter, registry: SiteRegistry, site: SiteConfig
) -> None:
    async with EmbeddedBroker(port=0) as broker:
        recorder = Recorder(broker.port)
        assert await asyncio.to_thread(recorder.ready.wait, WAIT)
        stop = asyncio.Event()
        run = asyncio.create_task(
            run_simulator(site, port=broker.port, rate=100.0, seed=3, stop=stop, seq_start=1)
        )
        got: list[mqtt.MQTTMessage] = []
        wanted = {"access", "gate", "perimeter", "alarm", "status"}
        seen: set[str] = set()
        async with asyncio.timeout(WAIT):
            while not wanted <= seen:
                await asyncio.sleep(0.05)
                for m in recorder.drain():
                    got.append(m)
                    if m.topic.endswith("/status"):
                        seen.add("status")
                    else:
                        seen.add(json.loads(m.payload)["kind"])
        stop.set()
        stats = await asyncio.wait_for(run, WAIT)
        # After a clean stop every device's retained status is offline.
        offline: set[str] = set()
        async with asyncio.timeout(WAIT):
            while len(offline) < len(mqtt_devices(site)):
                await asyncio.sleep(0.05)
                for m in recorder.drain():
                    got.append(m)
                    if m.topic.endswith("/status") and m.payload == b"offline":
                        offline.add(m.topic.split("/")[2])
        recorder.close()

    assert offline == {d.id for d in mqtt_devices(site)}
    assert stats.published == stats.acknowledged
    assert stats.published >= len(got)
    now = datetime.now(UTC)
    for m in got:
        event = normalise(adapter, registry, m.topic, m.payload, now)
        assert event.site == "demo-compound"


@pytest.mark.broker
async def test_simulate_command(site: SiteConfig) -> None:
    app = typer.Typer()
    simulate_cmd.register(app)

    @app.command("other")
    def other() -> None:  # a second command so `simulate` stays a sub-command
        pass

    async with EmbeddedBroker(port=0) as broker:
        args = ["simulate", "--port", str(broker.port), "--rate", "50", "--duration", "0.5"]
        result = await asyncio.to_thread(CliRunner().invoke, app, args)
        unknown = await asyncio.to_thread(
            CliRunner().invoke, app, [*args, "--site", "no-such-site"]
        )
    assert result.exit_code == 0, result.output
    assert "联防示范小区" in result.output
    assert "acknowledged" in result.output
    assert unknown.exit_code == 1
    assert "demo-compound" in unknown.output


def test_simulate_command_needs_the_password_variable() -> None:
    app = typer.Typer()
    simulate_cmd.register(app)
    app.command("other")(lambda: None)
    result = CliRunner().invoke(
        app, ["simulate", "--password-env", "LIANFANG_TEST_UNSET_VARIABLE", "--duration", "0"]
    )
    assert result.exit_code == 1
    assert "LIANFANG_TEST_UNSET_VARIABLE" in result.output


def test_devices_of_other_protocols_are_not_played_over_mqtt(registry: SiteRegistry) -> None:
    site = registry.sites["demo-compound"]
    played = {d.id for d in mqtt_devices(site)}
    others = {"panel-1234", "31010800001320000001", "31010800001190000002", "hik-acs-south-ped"}
    assert others <= {d.id for d in site.devices}
    assert not played & others
    assert {d.id for d in site.devices if d.profile in (None, "lianfang")} - others <= played
