"""A message no profile can read that looks like a panic press is raised as a P1 incident
(marked 无法解读 / unreadable, routed to the police desk and the command centre, with the raw
message) and still quarantined with its reason; other unreadable messages are only
quarantined."""

from __future__ import annotations

import asyncio
import json

import pytest

from device_adapters.registry import load_adapters
from gateway.config.settings import IngestConfig
from gateway.incidents.tables import incidents
from gateway.ingest.panic_sniff import looks_like_panic
from gateway.ingest.pipeline import Normaliser
from gateway.ingest.unregistered import (
    REGISTERED_LABEL,
    RULE_ID,
    UNREADABLE_LABEL,
    UnregisteredPanics,
    panic_signal,
)
from gateway.runtime import Gateway
from gateway.storage import tables
from tests.support.compound import ROOT
from tests.support.two_sites import OTHER, SITE, registry
from tests.test_unregistered_panic import (  # noqa: F401  (fixtures)
    T0,
    Press,
    gateway,
    press,
    recipients,
    rows,
    wait_until,
)


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


@pytest.mark.parametrize(
    "raw",
    [
        b'{"kind": "alarm", "type": "panic"}',
        b'{"v": 1, "kind": "alarm", "type": "panic", "attrs": {"nope": 1}}',
        b'{"action": "SOS"}',
        b'{"data": {"alarm_type": "duress_code"}}',
        b'{"sos": true, "battery": 80}',
        b'[{"event": "emergency"}]',
        b'{"type": "panic", "seq": 4',  # cut short: not JSON any more
        b"PANIC zone 3",
        '{"事件": "一键报警", "type": "紧急求助"}'.encode(),
    ],
)
def test_these_look_like_a_panic(raw: bytes) -> None:
    assert looks_like_panic(raw)


@pytest.mark.parametrize(
    "raw",
    [
        b'{"kind": "alarm", "type": "panic_cancel"}',
        b'{"action": "sos_off"}',
        b'{"type": "panic test"}',
        b'{"sos": false}',
        b'{"type": "heartbeat", "note": "panic button fine"}',  # not an event key
        b'{"type": "panic_battery_low"}',
        b'{"type": "panic", "seq": 4, "state": "cancel',  # broken, and cancelled
        b"{nonsense",
        b"12345",
        b'"hello"',
    ],
)
def test_these_do_not(raw: bytes) -> None:
    assert not looks_like_panic(raw)


def test_binary_noise_around_the_word_is_still_read() -> None:
    assert looks_like_panic(b"\xff\xfe\x00panic\x00")


def test_a_lianfang_panic_without_its_version_is_raised_for_its_site(
    normaliser: Normaliser,
) -> None:
    raw = b'{"kind": "alarm", "type": "panic"}'  # no "v": the profile declines it
    outcome = normaliser.process(f"lianfang/{SITE}/panic-1/event", raw)
    assert outcome.quarantined is not None and outcome.quarantined.reason == "no_match"
    assert "looks like a panic" in outcome.quarantined.detail
    [alarm] = outcome.alarms
    assert (alarm.site, alarm.site_named, alarm.unreadable) == (SITE, True, True)
    signal = panic_signal(alarm)
    assert signal.labels[UNREADABLE_LABEL] == "false" and REGISTERED_LABEL not in signal.labels
    assert signal.title_zh.startswith("无法解读的报警消息")
    assert "no_match" in signal.explanation and '"type": "panic"' in signal.explanation


def test_a_registered_button_s_panic_with_a_bad_field_is_raised(normaliser: Normaliser) -> None:
    raw = json.dumps({"v": 1, "kind": "alarm", "type": "panic", "attrs": {"zone": []}}).encode()
    outcome = normaliser.process(f"lianfang/{SITE}/panic-1/event", raw)
    assert outcome.quarantined is not None
    assert outcome.quarantined.reason in {"invalid_event", "no_match"}
    assert [a.site for a in outcome.alarms] == [SITE]


def test_unreadable_without_a_site_tells_every_site(normaliser: Normaliser) -> None:
    outcome = normaliser.process("zigbee2mqtt/sos-known", b'{"action": "sos", "battery": ')
    assert outcome.quarantined is not None and outcome.quarantined.reason == "malformed_json"
    assert sorted(a.site for a in outcome.alarms) == sorted([SITE, OTHER])


@pytest.mark.parametrize(
    "raw", [b'{"kind": "alarm", "type": "panic_cancel"}', b'{"kind": "alarm", "type": "x"}']
)
def test_other_unreadable_messages_are_only_quarantined(normaliser: Normaliser, raw: bytes) -> None:
    outcome = normaliser.process(f"lianfang/{SITE}/panic-1/event", raw)
    assert outcome.alarms == [] and outcome.quarantined is not None


def test_a_redelivery_gives_the_same_alarm(normaliser: Normaliser) -> None:
    raw = b'{"kind": "alarm", "type": "panic"}'
    first = normaliser.process(f"lianfang/{SITE}/panic-1/event", raw)
    again = normaliser.process(f"lianfang/{SITE}/panic-1/event", raw)
    assert [a.alarm_id for a in again.alarms] == [a.alarm_id for a in first.alarms]


@pytest.mark.broker
async def test_an_unreadable_panic_reaches_the_desk_and_stays_in_quarantine(
    gateway: Gateway,  # noqa: F811
    press: Press,  # noqa: F811
) -> None:
    raw = b'{"kind": "alarm", "type": "panic"}'
    await asyncio.to_thread(press.send, f"lianfang/{SITE}/panic-1/event", raw)
    [inc] = await wait_until(lambda: rows(gateway, incidents, incidents.c.rule_id == RULE_ID))
    assert (inc.severity, inc.category, inc.site) == ("P1", "panic", SITE)
    assert inc.labels[UNREADABLE_LABEL] == "false"
    assert recipients(gateway, inc.id) == {"police-desk/beat-n", "command-centre/st"}
    await asyncio.to_thread(gateway.writer.flush)
    [q] = rows(gateway, tables.quarantine, tables.quarantine.c.reason == "no_match")
    assert "looks like a panic" in q.detail and q.raw == raw
