"""MQTT ingest against a real broker: nothing lost, nothing stored twice, bad input quarantined."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text

from gateway.storage import tables
from tests.support.brokers import MosquittoBroker
from tests.support.compound import (
    DOORS,
    PANIC,
    ROOT,
    Publisher,
    event_payload,
    publish_in_thread,
    topic,
    write_gateway_config,
)

pytestmark = pytest.mark.broker


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class IngestProcess:
    """The ingest side of a gateway in its own process, so it can really be killed."""

    def __init__(self, config: Path, *options: str) -> None:
        self.config = config
        self.options = options
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.support.ingest_process",
                str(self.config),
                "v5",
                *self.options,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(20)


@pytest.fixture
def config(tmp_path: Path, mosquitto: MosquittoBroker) -> Path:
    return write_gateway_config(tmp_path, mosquitto.port)


@pytest.fixture
def gateway(config: Path) -> Iterator[IngestProcess]:
    proc = IngestProcess(config)
    proc.start()
    yield proc
    proc.terminate()


def db(config: Path) -> object:
    return create_engine(f"sqlite:///{config.parent / 'data' / 'lianfang.db'}")


def stored_seqs(engine: object) -> list[int]:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        ids = conn.execute(select(tables.events.c.event_id)).scalars().all()
    return sorted(int(i.rsplit(":", 1)[1]) for i in ids)


def test_events_are_stored_once_and_devices_marked_seen(
    config: Path, gateway: IngestProcess, mosquitto: MosquittoBroker
) -> None:
    pub = Publisher(mosquitto.port)
    items = [(topic(DOORS[i % 5]), event_payload(i, DOORS[i % 5])) for i in range(200)]
    pub.publish(items)
    pub.publish(items[:50])  # a device re-sending: same ids
    pub.close()
    engine = db(config)
    wait_for(lambda: len(stored_seqs(engine)) >= 200, what="200 events stored")
    time.sleep(0.3)  # let the redeliveries arrive too: they must not add rows
    assert stored_seqs(engine) == list(range(200))

    def seen() -> list[tuple[str, bool]]:
        with engine.connect() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(
                select(tables.devices.c.id, tables.devices.c.online).where(
                    tables.devices.c.last_seen_at.is_not(None)
                )
            ).all()
        return [(r.id, r.online) for r in rows]

    # last-seen state is written once a second, apart from the events
    wait_for(lambda: {d for d, _ in seen()} == set(DOORS), 5, "devices marked seen")
    assert all(online for _, online in seen())


def test_gateway_killed_mid_stream_loses_and_duplicates_nothing(
    config: Path, gateway: IngestProcess, mosquitto: MosquittoBroker
) -> None:
    total = 3000
    items = [(topic(DOORS[i % 5]), event_payload(i, DOORS[i % 5])) for i in range(total)]
    engine = db(config)
    publisher = publish_in_thread(mosquitto.port, items, pace=0.0005)
    wait_for(lambda: len(stored_seqs(engine)) > 300, what="the stream to be flowing")
    gateway.kill()  # SIGKILL: no chance to flush or acknowledge
    killed_at = len(stored_seqs(engine))
    publisher.join(60)
    assert not publisher.is_alive()
    gateway.start()  # same client id: the broker delivers what was queued or unacknowledged
    wait_for(lambda: len(stored_seqs(engine)) >= total, timeout=60, what="all events after restart")
    assert killed_at < total, "the kill came too late to test anything"
    assert stored_seqs(engine) == list(range(total))
    with engine.connect() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(select(func.count()).select_from(tables.events)).scalar_one()
        distinct = conn.execute(
            select(func.count(tables.events.c.event_id.distinct()))
        ).scalar_one()
    assert rows == distinct == total


def test_broker_restart_resubscribes_and_keeps_queued_messages(
    config: Path, gateway: IngestProcess, mosquitto: MosquittoBroker
) -> None:
    engine = db(config)
    pub = Publisher(mosquitto.port)
    pub.publish([(topic(), event_payload(i)) for i in range(100)])
    pub.close()
    wait_for(lambda: len(stored_seqs(engine)) == 100, what="first 100")
    mosquitto.restart()  # same port; the gateway reconnects with backoff
    pub = Publisher(mosquitto.port, client_id="test-publisher-2")
    pub.publish([(topic(), event_payload(i)) for i in range(100, 300)])
    pub.close()
    wait_for(
        lambda: len(stored_seqs(engine)) == 300, timeout=30, what="events after broker restart"
    )
    assert stored_seqs(engine) == list(range(300))


BAD_INPUTS: list[tuple[str, str, bytes]] = [
    ("malformed_json", topic(), b'{"v": 1, "seq": '),
    ("invalid_utf8", topic(), b'{"v": 1, "seq": 1, "x": "\xff\xfe"}'),
    ("oversize", topic(), b"[" * 100_000 + b"]" * 100_000),
    ("too_deep", topic(), b"[" * 30_000 + b"]" * 30_000),  # json.loads itself: RecursionError
    ("too_deep", topic(), b'{"v":1,"a":' + b"[" * 40 + b"]" * 40 + b"}"),
    ("oversize", topic(), b'{"pad": "' + b"x" * 70_000 + b'"}'),
    (
        "invalid_text",
        topic(),
        b'{"v": 1, "seq": 7, "kind": "access", "type": "access_granted", "attrs": {"door": "\\ud800"}}',
    ),
    ("unknown_device", topic("door-999"), event_payload(1, "door-999")),
    ("no_match", topic(), b'{"v": 2}'),
    ("invalid_event", topic(), b'{"v": 1, "seq": 9, "kind": "access", "type": "not_a_type"}'),
]


def test_bad_input_is_quarantined_with_its_reason_and_the_stream_goes_on(
    config: Path, gateway: IngestProcess, mosquitto: MosquittoBroker
) -> None:
    engine = db(config)
    pub = Publisher(mosquitto.port)
    for _reason, t, payload in BAD_INPUTS:
        pub.publish([(t, payload)])
    pub.publish([(topic(), event_payload(12345))])  # a good message after all that
    pub.close()
    wait_for(lambda: 12345 in stored_seqs(engine), what="the good message")
    with engine.connect() as conn:  # type: ignore[attr-defined]
        wait_for(
            lambda: (
                conn.execute(select(func.count()).select_from(tables.quarantine)).scalar_one()
                >= len(BAD_INPUTS)
            ),
            what="all bad messages quarantined",
        )
        rows = conn.execute(select(tables.quarantine).order_by(tables.quarantine.c.id)).all()
    assert [r.reason for r in rows] == [reason for reason, _, _ in BAD_INPUTS]
    for row, (_, t, payload) in zip(rows, BAD_INPUTS, strict=True):
        assert row.topic == t
        assert row.size == len(payload)
        assert row.raw == payload[:4096]
        assert row.detail
    assert stored_seqs(engine) == [12345]


def test_second_consumer_with_the_same_client_id_is_refused(
    config: Path, gateway: IngestProcess
) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "tests.support.ingest_process", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert second.returncode != 0
    assert "another Lianfang consumer" in second.stderr


def test_sqlite_runs_in_wal_mode(config: Path, gateway: IngestProcess) -> None:
    with db(config).connect() as conn:  # type: ignore[attr-defined]
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"


def resume_gateway_session(port: int) -> tuple[bool, list[bytes]]:
    """Connect with the gateway's client id, resuming its session: (session present,
    payloads the broker redelivers because the gateway never acknowledged them)."""
    import threading

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    resumed = threading.Event()
    session_present: list[bool] = []
    redelivered: list[bytes] = []
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="lianfang-test",  # the gateway's client id: its session
        protocol=mqtt.MQTTv5,
    )
    client.on_connect = lambda _c, _u, flags, _r, _p: (
        session_present.append(flags.session_present),
        resumed.set(),
    )
    client.on_message = lambda _c, _u, msg: redelivered.append(msg.payload)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 60
    client.connect("127.0.0.1", port, clean_start=False, properties=props)
    client.loop_start()
    try:
        assert resumed.wait(10)
        time.sleep(1.5)  # unacknowledged messages are resent right after CONNACK
    finally:
        client.disconnect()
        client.loop_stop()
    return session_present == [True], redelivered


def test_committed_messages_are_acknowledged_and_not_redelivered(
    config: Path, gateway: IngestProcess, mosquitto: MosquittoBroker
) -> None:
    """PUBACKs go out in one write per batch (gateway.ingest.mqtt): resuming the gateway's
    session after a clean stop must find nothing left to deliver."""
    pub = Publisher(mosquitto.port)
    pub.publish([(topic(DOORS[i % 5]), event_payload(i, DOORS[i % 5])) for i in range(1500)])
    pub.close()
    engine = db(config)
    wait_for(lambda: len(stored_seqs(engine)) >= 1500, what="1500 events stored")
    gateway.terminate()
    session_present, redelivered = resume_gateway_session(mosquitto.port)
    assert session_present  # the gateway's session, not a fresh one
    assert redelivered == []


def test_a_panic_is_acknowledged_only_once_its_incident_is_stored(
    config: Path, mosquitto: MosquittoBroker
) -> None:
    """A gateway that dies after committing a panic but before storing its incident leaves
    the panic unacknowledged: the broker redelivers it and the next run raises the alarm."""
    stalled = IngestProcess(config, "stall-incidents")
    stalled.start()
    panic = event_payload(900, PANIC, "panic")
    pub = Publisher(mosquitto.port)
    pub.publish([(topic(DOORS[0]), event_payload(1)), (topic(PANIC), panic)])
    pub.close()
    engine = db(config)
    wait_for(lambda: stored_seqs(engine) == [1, 900], what="door event and panic committed")
    time.sleep(0.5)  # the door event's PUBACK goes out with its batch
    stalled.kill()  # the panic is stored, its incident is not

    session_present, redelivered = resume_gateway_session(mosquitto.port)
    assert session_present
    assert redelivered == [panic]  # held; the door event was acknowledged on commit

    # The resume above took the redelivery; publish the press again as the broker would have
    # resent it to the gateway, and let a healthy gateway finish the job.
    healthy = IngestProcess(config)
    healthy.start()
    pub = Publisher(mosquitto.port)
    pub.publish([(topic(PANIC), panic)])
    pub.close()
    try:
        wait_for(lambda: _panic_incidents(engine) == 1, what="the panic's incident")
        time.sleep(0.5)
    finally:
        healthy.terminate()
    assert _panic_incidents(engine) == 1
    assert stored_seqs(engine) == [1, 900]  # the redelivered press was not stored twice
    _, redelivered = resume_gateway_session(mosquitto.port)
    assert redelivered == []  # acknowledged once the incident was stored


def _panic_incidents(engine: object) -> int:
    from gateway.incidents.tables import incidents

    with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(
            conn.execute(
                select(func.count()).select_from(incidents).where(incidents.c.category == "panic")
            ).scalar_one()
        )
