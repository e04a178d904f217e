"""A panic from a device missing from the registry is raised as a P1 incident (marked 未登记设备,
routed to the police desk and the command centre, with the raw message), and its message is
still quarantined; nothing else from unknown devices changes."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from device_adapters.profiles.engine import UnknownDevice
from device_adapters.registry import load_adapters
from gateway.config.settings import IngestConfig, load_gateway_config
from gateway.incidents.tables import incidents
from gateway.ingest.pipeline import Normaliser
from gateway.ingest.unregistered import RULE_ID, UnregisteredPanics, panic_signal
from gateway.notify.tables import notifications
from gateway.runtime import Gateway
from gateway.storage import tables
from tests.support.brokers import MosquittoBroker
from tests.support.compound import ROOT
from tests.support.two_sites import OTHER, SITE, registry, write_config

T0 = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)
SOS = b'{"action": "emergency", "battery": 87, "linkquality": 96}'


def lianfang(type_: str = "panic", kind: str = "alarm", seq: int = 1) -> bytes:
    return json.dumps({"v": 1, "seq": seq, "kind": kind, "type": type_}).encode()


@pytest.fixture
def normaliser() -> Normaliser:
    reg = registry()
    return Normaliser(
        load_adapters(ROOT / "config" / "profiles"),
        reg,
        IngestConfig(),
        clock=lambda: T0,
        unregistered=UnregisteredPanics(reg),
    )


# -- reading the message without the registry ------------------------------------------


@pytest.mark.parametrize(
    ("payload", "types"),
    [
        (SOS, {"panic"}),
        (b'{"action": "single"}', {"panic"}),  # a plain button used as a panic button
        (b'{"action": "double"}', set()),  # declined by the profile: not a panic
        (b'{"contact": false, "battery": 90}', {"door_open"}),
        # the tamper mapping comes first (and continues): the press is still seen
        (b'{"tamper": true, "action": "emergency"}', {"tamper", "panic"}),
    ],
)
def test_an_unknown_device_s_message_says_what_it_would_have_been(
    payload: bytes, types: set[str]
) -> None:
    adapter = next(
        a for a in load_adapters(ROOT / "config" / "profiles") if a.name == "zigbee2mqtt"
    )
    from device_adapters.base import Message

    with pytest.raises(UnknownDevice) as caught:
        adapter.normalise(
            Message("zigbee2mqtt/sos-new", json.loads(payload), payload, T0), lambda _id: None
        )
    assert caught.value.device_id == "sos-new" and caught.value.event_types == types


# -- planning in the normaliser --------------------------------------------------------


def test_a_zigbee_sos_from_an_unknown_name_is_quarantined_and_told_to_every_site(
    normaliser: Normaliser,
) -> None:
    outcome = normaliser.process("zigbee2mqtt/sos-typo", SOS)
    assert not outcome.events
    assert outcome.quarantined is not None and outcome.quarantined.reason == "unknown_device"
    assert "P1 incident raised" in outcome.quarantined.detail
    assert sorted(a.site for a in outcome.alarms) == sorted([SITE, OTHER])
    assert {a.device_id for a in outcome.alarms} == {"sos-typo"}
    assert not any(a.site_named for a in outcome.alarms)
    again = normaliser.process("zigbee2mqtt/sos-typo", SOS)  # a redelivery: the same ids
    assert [a.alarm_id for a in again.alarms] == [a.alarm_id for a in outcome.alarms]


def test_a_lianfang_panic_names_its_site(normaliser: Normaliser) -> None:
    outcome = normaliser.process(f"lianfang/{SITE}/panic-new/event", lianfang())
    assert [(a.site, a.site_named, a.source) for a in outcome.alarms] == [(SITE, True, "lianfang")]
    unknown_site = normaliser.process("lianfang/nowhere/panic-new/event", lianfang())
    assert sorted(a.site for a in unknown_site.alarms) == sorted([SITE, OTHER])


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        (f"lianfang/{SITE}/door-new/event", lianfang("access_denied", "access")),
        (f"lianfang/{SITE}/panic-new/event", lianfang("heartbeat")),
        ("zigbee2mqtt/contact-new", b'{"contact": false}'),
        ("zigbee2mqtt/sos-new", b'{"action": "double"}'),
    ],
)
def test_anything_else_from_an_unknown_device_is_only_quarantined(
    normaliser: Normaliser, topic: str, payload: bytes
) -> None:
    outcome = normaliser.process(topic, payload)
    assert outcome.alarms == [] and not outcome.events
    assert outcome.quarantined is not None and outcome.quarantined.reason == "unknown_device"


def test_registered_panics_take_the_ordinary_path(normaliser: Normaliser) -> None:
    for topic, payload in (
        ("zigbee2mqtt/sos-known", SOS),
        (f"lianfang/{SITE}/panic-1/event", lianfang()),
    ):
        outcome = normaliser.process(topic, payload)
        assert outcome.alarms == [] and outcome.quarantined is None
        assert [e.type for e in outcome.events] == ["panic"]


def test_the_signal_is_a_marked_p1_panic_with_the_raw_message(normaliser: Normaliser) -> None:
    raw = b'{"action": "emergency", "note": "\\u001b[31m call 13812345678"}'
    [alarm] = normaliser.process(f"lianfang/{SITE}/sos-x/event", lianfang()).alarms
    alarm = type(alarm)(**{**{f: getattr(alarm, f) for f in alarm.__slots__}, "raw": raw})
    signal = panic_signal(alarm)
    assert (signal.severity.value, signal.category.value, signal.rule_id) == (
        "P1",
        "panic",
        RULE_ID,
    )
    assert signal.title_zh.startswith("未登记设备") and "unregistered" in signal.title_en
    assert signal.labels["device.registered"] == "false"
    assert signal.site == SITE and signal.group_key == "sos-x"
    assert [(e.event_id, e.type.value) for e in signal.events] == [(alarm.alarm_id, "panic")]
    assert '"action": "emergency"' in signal.explanation  # the raw message …
    assert "13812345678" not in signal.explanation  # … with phone numbers masked
    assert "\x1b" not in signal.explanation


def test_a_flood_of_invented_ids_is_coalesced_per_site() -> None:
    panics = UnregisteredPanics(registry(), per_site_per_minute=3)
    alarms = [
        panics.plan(
            device_id=f"ghost-{i}",
            source="lianfang",
            origin=f"lianfang/{SITE}/ghost-{i}/event",
            raw=b"{}",
            detail="",
            received_at=T0,
            site=SITE,
        )
        for i in range(10)
    ]
    assert [len(a) for a in alarms] == [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert [a[0].coalesced for a in alarms[:4]] == [0, 0, 0, 1]
    flood = panic_signal(alarms[3][0])
    assert flood.group_key == "flood" and flood.title_zh.startswith("未登记设备报警过多")
    assert panics.stats.panics == 10 and panics.stats.coalesced == 6


# -- the running gateway ---------------------------------------------------------------


@pytest.fixture
async def gateway(tmp_path: Path, mosquitto: MosquittoBroker) -> AsyncIterator[Gateway]:
    gw = Gateway(load_gateway_config(write_config(tmp_path, mosquitto.port)))
    await gw.start()
    try:
        assert await gw.wait_subscribed(15)
        yield gw
    finally:
        await gw.stop()


async def wait_until(predicate: Callable[[], Any], within_s: float = 15.0) -> Any:
    deadline = time.monotonic() + within_s
    while not (found := predicate()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
    return found


def rows(gw: Gateway, table: Any, *where: Any) -> list[Any]:
    with gw.engine.connect() as conn:
        return list(conn.execute(select(table).where(*where)))


class Press:
    """A QoS 1 publisher that can tell whether the broker got our PUBACK back... and which
    messages the gateway acknowledged (through the broker's PUBACK to us)."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id="test-press"
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        return info

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def press(mosquitto: MosquittoBroker) -> Iterator[Press]:
    p = Press(mosquitto.port)
    yield p
    p.close()


def recipients(gw: Gateway, incident_id: int) -> set[str]:
    return {
        f"{n.recipient_kind}/{n.recipient_id}"
        for n in rows(gw, notifications, notifications.c.incident_id == incident_id)
    }


@pytest.mark.broker
async def test_a_lianfang_panic_from_an_unknown_device_becomes_a_p1_incident(
    gateway: Gateway, press: Press
) -> None:
    await asyncio.to_thread(press.send, f"lianfang/{SITE}/panic-typo/event", lianfang())
    [inc] = await wait_until(lambda: rows(gateway, incidents, incidents.c.rule_id == RULE_ID))
    assert (inc.severity, inc.category, inc.site, inc.device_id) == (
        "P1",
        "panic",
        SITE,
        "panic-typo",
    )
    assert inc.title_zh.startswith("未登记设备") and inc.labels["device.registered"] == "false"
    assert '"type": "panic"' in inc.description  # the raw message
    assert recipients(gateway, inc.id) == {"police-desk/beat-n", "command-centre/st"}
    await asyncio.to_thread(gateway.writer.flush)
    [q] = rows(gateway, tables.quarantine, tables.quarantine.c.device_id == "panic-typo")
    assert q.reason == "unknown_device" and "P1 incident raised" in q.detail
    assert q.raw == lianfang()


@pytest.mark.broker
async def test_a_zigbee_sos_from_an_unknown_name_reaches_every_site_s_desk(
    gateway: Gateway, press: Press
) -> None:
    await asyncio.to_thread(press.send, "zigbee2mqtt/sos-new", SOS)
    found = await wait_until(
        lambda: (
            (r := rows(gateway, incidents, incidents.c.rule_id == RULE_ID)) and len(r) == 2 and r
        )
    )
    by_site = {inc.site: inc for inc in found}
    assert set(by_site) == {SITE, OTHER}
    assert all(i.severity == "P1" and i.device_id == "sos-new" for i in found)
    assert recipients(gateway, by_site[SITE].id) == {"police-desk/beat-n", "command-centre/st"}
    assert recipients(gateway, by_site[OTHER].id) == {"police-desk/beat-s", "command-centre/st"}


@pytest.mark.broker
async def test_the_acknowledgement_waits_for_the_incident(gateway: Gateway, press: Press) -> None:
    sent: list[Any] = []  # the gateway's PUBACKs to the broker, by token

    def recording(send: Callable[[list[Any]], None]) -> Callable[[list[Any]], None]:
        def record(tokens: list[Any]) -> None:
            sent.extend(tokens)
            send(tokens)

        return record

    gateway.consumer.send_acks = recording(gateway.consumer.send_acks)  # type: ignore[method-assign]
    gateway.ack_gate._send = recording(gateway.ack_gate._send)
    # Hold the incident service's database thread: the quarantine row commits, the incident
    # cannot be stored yet, so the message must stay unacknowledged.
    release = threading.Event()
    blocked = asyncio.ensure_future(gateway.incidents.service.run_db(release.wait, 30))
    try:
        await asyncio.to_thread(press.send, f"lianfang/{SITE}/panic-held/event", lianfang())
        await wait_until(lambda: len(gateway.ack_gate) == 1)
        await asyncio.to_thread(gateway.writer.flush)  # its quarantine row is committed …
        assert rows(gateway, tables.quarantine, tables.quarantine.c.device_id == "panic-held")
        assert sent == []  # … and no PUBACK went out
        assert rows(gateway, incidents, incidents.c.rule_id == RULE_ID) == []
    finally:
        release.set()
        await blocked
    await wait_until(lambda: sent)  # the incident is stored: acknowledged
    assert len(sent) == 1 and len(gateway.ack_gate) == 0
    assert len(rows(gateway, incidents, incidents.c.rule_id == RULE_ID)) == 1


@pytest.mark.broker
async def test_a_receiver_reports_an_unknown_account_s_panic(gateway: Gateway) -> None:
    report = await gateway.report_unregistered_panic(
        device_id="sia-acct-9999",
        protocol="sia-dc09",
        raw=b'"SIA-DCS"0042L0#9999[#9999|Nri1/PA501]',
        detail="account 9999 is not registered",
        site=SITE,
        origin="tcp:127.0.0.1:40000",
    )
    assert report.stored and report.sites == (SITE,)
    [inc] = rows(gateway, incidents, incidents.c.rule_id == RULE_ID)
    assert inc.device_id == "sia-acct-9999" and inc.labels["unregistered.source"] == "sia-dc09"
    assert "PA501" in inc.description
    await asyncio.to_thread(gateway.writer.flush)
    [q] = rows(gateway, tables.quarantine, tables.quarantine.c.device_id == "sia-acct-9999")
    assert q.topic == "tcp:127.0.0.1:40000" and q.reason == "unknown_device"
    # the same report again (a retransmission) is recognised: no second incident
    again = await gateway.report_unregistered_panic(
        device_id="sia-acct-9999",
        protocol="sia-dc09",
        raw=b'"SIA-DCS"0042L0#9999[#9999|Nri1/PA501]',
        site=SITE,
        origin="tcp:127.0.0.1:40000",
    )
    assert again.stored and again.alarm_ids == report.alarm_ids
    assert len(rows(gateway, incidents, incidents.c.rule_id == RULE_ID)) == 1
