"""BufferedReadClient: paho's parser fed from a read buffer, against a scripted loopback broker."""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.ingest.paho_client import (
    BufferedReadClient,
    SharedTableProperties,
    install_shared_property_tables,
)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def publish(
    topic: str, payload: bytes, mid: int, *, v5: bool, user: tuple[str, str] | None = None
) -> bytes:
    props = b""
    if v5:
        block = b"\x26" + _utf8(user[0]) + _utf8(user[1]) if user else b""
        props = _varint(len(block)) + block
    body = _utf8(topic) + struct.pack("!H", mid) + props + payload
    return b"\x32" + _varint(len(body)) + body


class ScriptedBroker:
    """Accepts one client, answers CONNECT and SUBSCRIBE, then sends what the test gives it."""

    def __init__(self, v5: bool) -> None:
        self.v5 = v5
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.conn: socket.socket | None = None
        self.ready = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.server.accept()
        conn.recv(65536)  # CONNECT
        conn.sendall(b"\x20\x03\x00\x00\x00" if self.v5 else b"\x20\x02\x00\x00")
        data = conn.recv(65536)  # SUBSCRIBE: answer with a SUBACK granting QoS 1
        mid = data[2:4]  # a short SUBSCRIBE: one byte of remaining length, then the packet id
        conn.sendall(
            (b"\x90\x04" + mid + b"\x00\x01") if self.v5 else (b"\x90\x03" + mid + b"\x01")
        )
        self.conn = conn
        self.ready.set()

    def send(self, data: bytes) -> None:
        assert self.conn is not None
        self.conn.sendall(data)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.server.close()


@pytest.fixture(params=["v5", "v311"])
def pair(request: pytest.FixtureRequest) -> Any:
    v5 = request.param == "v5"
    broker = ScriptedBroker(v5)
    received: list[mqtt.MQTTMessage] = []
    reads_done: list[int] = []
    client = BufferedReadClient(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="t",
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        manual_ack=True,
    )
    client.on_message = lambda _c, _u, m: received.append(m)
    client.on_connect = lambda c, *_: c.subscribe("#", qos=1)
    client.on_read_done = lambda: reads_done.append(len(received))
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    assert broker.ready.wait(10)
    yield v5, broker, client, received, reads_done
    client.loop_stop()
    broker.close()


def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_burst_in_one_write_is_delivered_whole_and_in_order(pair: Any) -> None:
    v5, broker, client, received, reads_done = pair
    payloads = [f'{{"seq": {i}, "pad": "{"x" * (i % 300)}"}}'.encode() for i in range(2000)]
    burst = b"".join(publish(f"dev/{i % 7}/event", p, i + 1, v5=v5) for i, p in enumerate(payloads))
    broker.send(burst)  # ~600 KB: more than one buffered read, packets cut at read boundaries
    wait_for(lambda: len(received) == len(payloads))
    assert [m.payload for m in received] == payloads
    assert [m.mid for m in received] == list(range(1, 2001))
    assert received[5].topic == "dev/5/event"
    # Hand-off points come after parsing: every message was delivered by the last one.
    wait_for(lambda: bool(reads_done) and reads_done[-1] == len(payloads))
    assert len(reads_done) < len(payloads) / 10  # per read, not per message
    assert client.buffered_bytes() == 0


def test_a_packet_split_across_writes_waits_for_its_tail(pair: Any) -> None:
    v5, broker, _client, received, _ = pair
    packet = publish("dev/1/event", b'{"a": 1}', 9, v5=v5)
    broker.send(packet[:5])
    time.sleep(0.2)
    assert received == []
    broker.send(packet[5:] + publish("dev/2/event", b"{}", 10, v5=v5))
    wait_for(lambda: len(received) == 2)
    assert received[0].payload == b'{"a": 1}'
    assert received[1].topic == "dev/2/event"


def test_v5_properties_are_parsed_when_present(pair: Any) -> None:
    v5, broker, _client, received, _ = pair
    if not v5:
        pytest.skip("MQTT 3.1.1 has no properties")
    broker.send(
        publish("p", b"1", 1, v5=True, user=("vendor", "hik")) + publish("p", b"2", 2, v5=True)
    )
    wait_for(lambda: len(received) == 2)
    with_props, without = received
    assert isinstance(with_props.properties, Properties)
    assert with_props.properties.UserProperty == [("vendor", "hik")]
    assert without.properties is not None
    assert without.properties.isEmpty()
    assert not hasattr(without.properties, "UserProperty")


def test_shared_tables_are_installed_and_behave_like_paho_properties() -> None:
    assert install_shared_property_tables()
    a = SharedTableProperties(PacketTypes.PUBLISH)
    b = SharedTableProperties(PacketTypes.PUBLISH)
    assert a.names is b.names  # shared, not rebuilt per packet
    a.UserProperty = ("k", "v")
    assert a.UserProperty == [("k", "v")]
    assert not hasattr(b, "UserProperty")
    with pytest.raises(Exception, match="does not apply"):
        a.SessionExpiryInterval = 5  # paho's checks still run on assignment
    parsed, length = SharedTableProperties(PacketTypes.PUBLISH).unpack(b"\x00rest")
    assert length == 1 and parsed.isEmpty()


class _FakeSocket:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def recv(self, _n: int) -> bytes:
        if not self.chunks:
            raise BlockingIOError
        return self.chunks.pop(0)


def test_bytes_buffered_from_an_old_connection_are_never_served_on_a_new_one() -> None:
    client = BufferedReadClient(callback_api_version=CallbackAPIVersion.VERSION2, client_id="x")
    client._sock = _FakeSocket([b"abcdef"])  # type: ignore[assignment]
    assert client._sock_recv(2) == b"ab"
    assert client.buffered_bytes() == 4
    client._sock = _FakeSocket([b"XYZ"])  # reconnected
    assert client.buffered_bytes() == 0
    assert client._sock_recv(2) == b"XY"
    assert client._sock_recv(5) == b"Z"
    with pytest.raises(BlockingIOError):
        client._sock_recv(1)
    client._sock = None
