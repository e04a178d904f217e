"""The embedded broker: loopback only, free port, and MQTT 3.1.1 persistent sessions with paho."""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.demo.broker import EmbeddedBroker

pytestmark = pytest.mark.broker

WAIT = 10.0  # upper bound against hangs only; the steps normally take milliseconds


@pytest.fixture
async def broker() -> AsyncIterator[EmbeddedBroker]:
    async with EmbeddedBroker(port=0) as b:
        yield b


class Client:
    """A paho client in its own network thread, recording what arrives."""

    def __init__(self, port: int, client_id: str, *, clean_session: bool) -> None:
        self.port = port
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.session_present: bool | None = None
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean_session
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        self.client.on_message = lambda c, u, m: self.messages.put(m)

    def _on_connect(self, client: mqtt.Client, userdata: object, flags, reason, props) -> None:  # type: ignore[no-untyped-def]
        self.session_present = flags.session_present
        self.connected.set()

    def connect(self) -> None:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        assert self.connected.wait(WAIT)

    def subscribe(self, topic: str) -> None:
        self.subscribed.clear()
        self.client.subscribe(topic, qos=1)
        assert self.subscribed.wait(WAIT)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(WAIT)

    def disconnect(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def get(self) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=WAIT)


def test_rejects_non_loopback_host() -> None:
    with pytest.raises(ValueError, match="loopback"):
        EmbeddedBroker(host="0.0.0.0")
    with pytest.raises(ValueError, match="loopback"):
        EmbeddedBroker(host="192.168.1.10")
    assert EmbeddedBroker(host="localhost").host == "127.0.0.1"


def test_config_has_one_tcp_listener_and_no_sys_plugin() -> None:
    config = EmbeddedBroker(port=0).config()
    assert list(config["listeners"]) == ["default"]
    assert config["listeners"]["default"]["type"] == "tcp"
    assert config["listeners"]["default"]["bind"].startswith("127.0.0.1:")
    assert not any("sys" in name.lower() for name in config["plugins"])


async def test_port_zero_binds_a_free_port(broker: EmbeddedBroker) -> None:
    assert broker.running
    assert broker.port > 0
    # Something listens there.
    _reader, writer = await asyncio.open_connection("127.0.0.1", broker.port)
    writer.close()
    await writer.wait_closed()


async def test_double_start_fails_and_stop_is_idempotent() -> None:
    b = EmbeddedBroker(port=0)
    await b.start()
    with pytest.raises(RuntimeError):
        await b.start()
    await b.stop()
    await b.stop()
    assert not b.running


def _persistent_session_scenario(port: int) -> None:
    sub = Client(port, "gw-persistent", clean_session=False)
    sub.connect()
    sub.subscribe("lianfang/#")
    sub.publish("lianfang/s/d/event", b"live")
    live = sub.get()
    assert (live.payload, live.qos, live.retain) == (b"live", 1, False)
    sub.disconnect()

    pub = Client(port, "device", clean_session=True)
    pub.connect()
    pub.publish("lianfang/s/d/event", b"while-away-1")
    pub.publish("lianfang/s/d/event", b"while-away-2")
    pub.disconnect()

    again = Client(port, "gw-persistent", clean_session=False)
    again.connect()
    assert again.session_present is True
    received = [again.get(), again.get()]
    assert sorted(m.payload for m in received) == [b"while-away-1", b"while-away-2"]
    assert all(m.qos == 1 for m in received)
    # Queued messages are ordinary deliveries, not retained state (amqtt 0.12 bug, patched).
    assert not any(m.retain for m in received)
    again.disconnect()


async def test_qos1_persistent_session_gets_messages_published_while_away(
    broker: EmbeddedBroker,
) -> None:
    await asyncio.to_thread(_persistent_session_scenario, broker.port)


def _clean_session_scenario(port: int) -> None:
    sub = Client(port, "gw-clean", clean_session=True)
    sub.connect()
    sub.subscribe("lianfang/#")
    sub.disconnect()
    pub = Client(port, "device", clean_session=True)
    pub.connect()
    pub.publish("lianfang/s/d/event", b"lost")
    pub.disconnect()
    again = Client(port, "gw-clean", clean_session=True)
    again.connect()
    assert again.session_present is False
    again.subscribe("lianfang/other/#")  # a round trip: anything queued would have come first
    assert again.messages.empty()
    again.disconnect()


async def test_clean_session_gets_nothing_queued(broker: EmbeddedBroker) -> None:
    await asyncio.to_thread(_clean_session_scenario, broker.port)


def _retained_scenario(port: int) -> None:
    watcher = Client(port, "watcher", clean_session=True)
    watcher.connect()
    watcher.subscribe("lianfang/+/+/status")
    watcher.publish("lianfang/s/d/status", b"online", retain=True)
    assert watcher.get().payload == b"online"

    # A new client that subscribes to something else must not get the status message
    # (amqtt 0.12 replays retained messages of other clients' subscriptions on connect).
    other = Client(port, "other", clean_session=True)
    other.connect()
    other.subscribe("elsewhere/#")
    assert other.messages.empty()
    # Subscribing to it delivers the retained message with RETAIN set.
    other.subscribe("lianfang/+/+/status")
    got = other.get()
    assert (got.topic, got.payload, got.retain) == ("lianfang/s/d/status", b"online", True)
    other.disconnect()
    watcher.disconnect()


async def test_retained_messages_go_only_to_matching_subscriptions(
    broker: EmbeddedBroker,
) -> None:
    await asyncio.to_thread(_retained_scenario, broker.port)
