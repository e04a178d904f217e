"""Acknowledgement over MQTT: a console acknowledges on lianfang/ack/<kind>/<id>; the gateway
records it like the HTTP acknowledgement (timeline, deliveries, escalation stopped, audit),
refuses what was not addressed to that topic's recipient and survives garbage."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from gateway.audit.chain import AuditLog
from gateway.audit.tables import audit_log
from gateway.bus import EventBus
from gateway.config.settings import MqttConfig
from gateway.incidents.acks import AckRejected, MqttAcks, parse_ack
from gateway.incidents.queries import get_incident
from gateway.incidents.runtime import IncidentsRuntime
from gateway.incidents.service import AckOutcome
from gateway.notify.tables import notifications
from tests.incidents.helpers import (
    CONFIG,
    FakeClock,
    Recorder,
    engine_at,
    panic_signal,
    registry,
    runtime,
)
from tests.support.brokers import MosquittoBroker

DESK = "police-desk/beat-taiping-2"
WORKER = "person/p-worker-4"
COMMUNITY = "community/shifan"


# -- parsing (no broker) --------------------------------------------------------------------


def test_parse_ack_reads_topic_and_body() -> None:
    ack = parse_ack(
        "lianfang/ack/police-desk/beat-1",
        json.dumps({"notification_id": 7, "by": "王警官", "note": "出警", "extra": 1}).encode(),
    )
    assert (ack.recipient_kind, ack.recipient_id, ack.notification_id) == (
        "police-desk",
        "beat-1",
        7,
    )
    assert (ack.by, ack.note, ack.actor) == ("王警官", "出警", "police-desk/beat-1")
    assert parse_ack("lianfang/ack/person/p-1", b'{"incident_id": 3}').actor == "p-1"


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("lianfang/ack/police-desk", b'{"notification_id": 1}', "bad_topic"),
        ("lianfang/ack/a/b/c", b'{"notification_id": 1}', "bad_topic"),
        ("other/police-desk/b", b'{"notification_id": 1}', "bad_topic"),
        ("lianfang/ack/person/p", b"\xff\xfe", "not_json"),
        ("lianfang/ack/person/p", b"{not json", "not_json"),
        ("lianfang/ack/person/p", b"[1, 2]", "not_object"),
        ("lianfang/ack/person/p", b'{"incident_id": 1, "incident_id": 2}', "duplicate_key"),
        ("lianfang/ack/person/p", b"{}", "no_id"),
        ("lianfang/ack/person/p", b'{"notification_id": "7"}', "bad_id"),
        ("lianfang/ack/person/p", b'{"notification_id": true}', "bad_id"),
        ("lianfang/ack/person/p", b'{"notification_id": 0}', "bad_id"),
        ("lianfang/ack/person/p", b'{"incident_id": 1e300}', "bad_id"),
        ("lianfang/ack/person/p", b'{"incident_id": 1, "by": 5}', "bad_field"),
        (
            "lianfang/ack/person/p",
            b'{"incident_id": 1, "note": "' + b"x" * 600 + b'"}',
            "bad_field",
        ),
        (
            "lianfang/ack/person/p",
            b'{"incident_id": 1, "pad": "' + b"x" * 5000 + b'"}',
            "oversized",
        ),
    ],
)
def test_parse_ack_refuses_malformed(topic: str, payload: bytes, reason: str) -> None:
    with pytest.raises(AckRejected) as info:
        parse_ack(topic, payload)
    assert info.value.reason == reason


async def test_a_repeated_ack_is_recorded_once(tmp_path: Path) -> None:
    r = runtime(tmp_path, FakeClock())
    await r.start()
    try:
        await r.emit(panic_signal())
        await r.dispatcher.drain()
        mqtt_rec: Recorder = r.dispatcher.notifiers["mqtt"]  # type: ignore[assignment]
        nid = mqtt_rec.to(DESK)[0].notification_id
        kind, rid = DESK.split("/")
        first = await r.service.acknowledge_as(kind, rid, notification_id=nid, actor=DESK)
        again = await r.service.acknowledge_as(kind, rid, notification_id=nid, actor=DESK)
        assert (first.outcome, again.outcome) == (AckOutcome.RECORDED, AckOutcome.DUPLICATE)
        inc = await r.service.run_db(get_incident, r.engine, first.incident_id)
        assert inc is not None
        assert [e["action"] for e in inc["timeline"]].count("acknowledge") == 1
    finally:
        await r.stop()


# -- against Mosquitto ----------------------------------------------------------------------


class Console:
    """A console or app: reads its notification topic, publishes acknowledgements."""

    def __init__(self, port: int, recipient: str) -> None:
        self.recipient = recipient
        self.got: list[dict[str, Any]] = []
        ready = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"console-{recipient.replace('/', '-')}",
        )
        self.client.on_message = lambda _c, _u, m: self.got.append(json.loads(m.payload))
        self.client.on_subscribe = lambda *_a: ready.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"lianfang/notify/{recipient}", qos=1)
        self.client.loop_start()
        assert ready.wait(10)

    def ack(self, body: bytes | dict[str, Any], topic: str | None = None) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        info = self.client.publish(topic or f"lianfang/ack/{self.recipient}", raw, qos=1)
        info.wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def until(check: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    for _ in range(int(seconds * 50)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def live(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> AsyncIterator[tuple[IncidentsRuntime, FakeClock, AuditLog]]:
    clock = FakeClock()
    engine = engine_at(tmp_path)
    audit = AuditLog(engine, b"k" * 32)
    r = IncidentsRuntime(
        engine,
        EventBus(),
        registry(),
        config_dir=CONFIG,
        data_dir=tmp_path,
        mqtt=MqttConfig(host="127.0.0.1", port=mosquitto.port, client_id="gw-acks"),
        clock=clock,
        rule_dir=CONFIG / "rules",
        tick_s=3600,  # the test ticks the virtual clock by hand
        audit=audit,
    )
    await r.start()
    try:
        yield r, clock, audit
    finally:
        await r.stop()


async def detail(r: IncidentsRuntime, incident_id: int) -> dict[str, Any]:
    found = await r.service.run_db(get_incident, r.engine, incident_id)
    assert found is not None
    return found


def audit_rows(audit: AuditLog) -> list[Any]:
    with audit.engine.connect() as conn:
        return list(conn.execute(select(audit_log).order_by(audit_log.c.id)))


@pytest.mark.broker
async def test_panic_acknowledged_over_mqtt_stops_escalation(
    live: tuple[IncidentsRuntime, FakeClock, AuditLog], mosquitto: MosquittoBroker
) -> None:
    r, clock, audit = live
    desk, worker, community = (Console(mosquitto.port, x) for x in (DESK, WORKER, COMMUNITY))
    try:
        await r.emit(panic_signal())
        await until(lambda: bool(desk.got and worker.got and community.got), "notifications")
        note = desk.got[0]
        assert note["ack_required"] is True
        assert note["ack_topic"] == f"lianfang/ack/{DESK}"
        incident_id = note["incident_id"]

        desk.ack({"notification_id": note["notification_id"], "by": "王警官", "note": "出警"})
        worker.ack({"incident_id": incident_id})
        community.ack({"notification_id": community.got[0]["notification_id"]})
        await until(lambda: r.acks.stats.recorded == 3, "three acknowledgements")

        inc = await detail(r, incident_id)
        acks = [e for e in inc["timeline"] if e["action"] == "acknowledge"]
        assert {e["actor"] for e in acks} == {DESK, "p-worker-4", COMMUNITY}
        by_desk = next(e for e in acks if e["actor"] == DESK)
        assert by_desk["role"] == "police_desk"
        assert "via mqtt by 王警官: 出警" in by_desk["note"]
        assert by_desk["data"]["via"] == "mqtt"
        assert inc["acked_at"] is not None
        mine = [
            d for d in inc["deliveries"] if f"{d['recipient_kind']}/{d['recipient_id']}" == DESK
        ]
        assert mine and all(d["acked_at"] is not None and d["acked_by"] == DESK for d in mine)

        clock.advance(61)  # past the P1 deadline of 60 s
        await r.dispatcher.tick()
        await r.dispatcher.drain()
        inc = await detail(r, incident_id)
        assert not [e for e in inc["timeline"] if e["action"] == "escalate"]
        # the desk took it: the others already told were told so, the desk was not
        assert {d["occasion"] for d in inc["deliveries"]} == {"new", "acknowledged"}
        await until(
            lambda: [m["occasion"] for m in worker.got] == ["new", "acknowledged"],
            "the worker told the incident is taken",
        )
        assert [m["occasion"] for m in desk.got] == ["new"]
        assert worker.got[1]["acknowledged"]["by"] == DESK
        assert worker.got[1]["ack_required"] is False
        assert [row.action for row in audit_rows(audit)] == ["MQTT ack"] * 3
        assert {row.status for row in audit_rows(audit)} == {200}
        assert audit.verify().ok
    finally:
        for c in (desk, worker, community):
            c.close()


@pytest.mark.broker
async def test_wrong_recipient_and_garbage_are_refused_and_the_stream_goes_on(
    live: tuple[IncidentsRuntime, FakeClock, AuditLog],
    mosquitto: MosquittoBroker,
    caplog: pytest.LogCaptureFixture,
) -> None:
    r, clock, audit = live
    desk, worker = Console(mosquitto.port, DESK), Console(mosquitto.port, WORKER)
    try:
        await r.emit(panic_signal())
        await until(lambda: bool(desk.got and worker.got), "notifications")
        incident_id = desk.got[0]["incident_id"]
        worker_nid = worker.got[0]["notification_id"]
        with caplog.at_level(logging.WARNING, logger="gateway.incidents.acks"):
            desk.ack({"notification_id": worker_nid})  # the worker's, on the desk's topic
            desk.ack({"incident_id": incident_id + 1000})  # no such incident
            desk.ack(b"\xff garbage")
            desk.ack(b"\xff more garbage")  # counted, not logged again
            desk.ack(b"[1]")
            desk.ack(
                {"notification_id": desk.got[0]["notification_id"], "incident_id": incident_id + 1}
            )  # names another incident
            desk.ack({"notification_id": desk.got[0]["notification_id"]})  # still heard
            stats = r.acks.stats
            await until(lambda: stats.recorded + stats.refused.total() == 7, "seven answers")
        assert stats.received == 7 and stats.recorded == 1
        assert dict(stats.refused) == {
            "not_addressed": 2,
            "not_found": 1,
            "not_json": 2,
            "not_object": 1,
        }
        assert sum("not_json" in m for m in caplog.messages) == 1

        inc = await detail(r, incident_id)
        acks = [e for e in inc["timeline"] if e["action"] == "acknowledge"]
        assert [e["actor"] for e in acks] == [DESK]
        with r.engine.connect() as conn:
            acked = conn.execute(
                select(notifications.c.acked_at).where(notifications.c.id == worker_nid)
            ).scalar_one()
        assert acked is None  # the desk could not acknowledge for the worker

        rows = audit_rows(audit)
        assert sorted(row.status for row in rows) == [200, 400, 400, 400, 403, 403, 404]
        assert {row.actor for row in rows} == {DESK}
        refused = [row.after["response"] for row in rows if row.status == 403]
        assert {x["outcome"] for x in refused} == {"not_addressed"}

        clock.advance(61)  # the worker never acknowledged, but the desk took the incident
        await r.dispatcher.tick()
        await r.dispatcher.drain()
        inc = await detail(r, incident_id)
        assert inc["acked_by"] == DESK
        assert not [e for e in inc["timeline"] if e["action"] == "escalate"]
    finally:
        desk.close()
        worker.close()


def live_runtime(tmp: Path, engine: Any, port: int, clock: FakeClock) -> IncidentsRuntime:
    return IncidentsRuntime(
        engine,
        EventBus(),
        registry(),
        config_dir=CONFIG,
        data_dir=tmp,
        mqtt=MqttConfig(host="127.0.0.1", port=port, client_id="gw-restart"),
        clock=clock,
        rule_dir=CONFIG / "rules",
        tick_s=3600,
    )


@pytest.mark.broker
async def test_acks_published_while_the_gateway_is_down_arrive_after_a_restart(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    clock, engine = FakeClock(), engine_at(tmp_path)
    desk, worker = Console(mosquitto.port, DESK), Console(mosquitto.port, WORKER)
    first = live_runtime(tmp_path, engine, mosquitto.port, clock)
    await first.start()
    try:
        await first.emit(panic_signal())
        await until(lambda: bool(desk.got and worker.got), "notifications")
        desk.ack({"notification_id": desk.got[0]["notification_id"]})
        await until(lambda: first.acks.stats.recorded == 1, "the desk's acknowledgement")
    finally:
        await first.stop()
    incident_id = worker.got[0]["incident_id"]
    worker.ack({"incident_id": incident_id})  # nobody listening: the broker keeps it
    second = live_runtime(tmp_path, engine, mosquitto.port, clock)
    await second.start()
    try:
        await until(lambda: second.acks.stats.recorded == 1, "the worker's acknowledgement")
        await asyncio.sleep(0.5)
        # the desk's was acknowledged to the broker after it was recorded: not delivered again
        assert second.acks.stats.received == 1
        inc = await detail(second, incident_id)
        actors = [e["actor"] for e in inc["timeline"] if e["action"] == "acknowledge"]
        assert actors == [DESK, "p-worker-4"]
    finally:
        await second.stop()
        desk.close()
        worker.close()


def test_the_ack_handler_is_wired_to_the_mqtt_notifier(tmp_path: Path) -> None:
    r = IncidentsRuntime(
        engine_at(tmp_path),
        EventBus(),
        registry(),
        config_dir=CONFIG,
        data_dir=tmp_path,
        mqtt=MqttConfig(host="127.0.0.1", port=1, client_id="x"),
        rule_dir=CONFIG / "rules",
    )
    notifiers, _ = r._default_notifiers()
    mqtt_notifier = notifiers["mqtt"]
    assert isinstance(r.acks, MqttAcks)
    assert mqtt_notifier.on_ack is r.acks  # type: ignore[attr-defined]
    assert mqtt_notifier.ack_subscription() == "lianfang/ack/+/+"  # type: ignore[attr-defined]
    r.service.close()
