"""BufferedReadClient: paho's parser fed from a read buffer, against a scripted loopback broker."""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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


# ---- the lean PUBLISH path (on_incoming_publish) against paho's own parser ----------------

Delivery = tuple[bytes, bytes, int, int]  # topic bytes, payload, qos, packet id


def _publish_packet(
    topic: bytes, payload: bytes, qos: int, mid: int, *, v5: bool, user: bool = False
) -> bytes:
    body = struct.pack("!H", len(topic)) + topic
    if qos:
        body += struct.pack("!H", mid)
    if v5:
        block = b"\x26" + _utf8("k") + _utf8("v") if user else b""
        body += _varint(len(block)) + block
    body += payload
    return bytes([0x30 | (qos << 1)]) + _varint(len(body)) + body


class _Feed:
    """A socket that returns the given chunks one per ``recv`` (each at most what was asked),
    then would block."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    def recv(self, n: int) -> bytes:
        if not self.chunks:
            raise BlockingIOError
        chunk = self.chunks.pop(0)
        if len(chunk) > n:
            self.chunks.insert(0, chunk[n:])
        return chunk[:n]

    def close(self) -> None:
        self.chunks = []


def _receive(stream: bytes, cuts: list[int], *, v5: bool, lean: bool) -> tuple[list[Delivery], int]:
    """Everything a client delivers from ``stream`` read in pieces cut at ``cuts``, and how
    many of those came through the lean path."""
    client = BufferedReadClient(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="t",
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        manual_ack=True,
    )
    got: list[Delivery] = []
    lean_count = [0]

    def on_message(_c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        got.append((m._topic, bytes(m.payload), m.qos, m.mid if m.qos else 0))

    def on_incoming(topic: bytes, payload: bytes, qos: int, mid: int) -> None:
        lean_count[0] += 1
        got.append((topic, payload, qos, mid))

    client.on_message = on_message
    if lean:
        client.on_incoming_publish = on_incoming
    chunks, at = [], 0
    for cut in [*sorted({c for c in cuts if 0 < c < len(stream)}), len(stream)]:
        chunks.append(stream[at:cut])
        at = cut
    client._sock = _Feed([c for c in chunks if c])  # type: ignore[assignment]
    for _ in range(len(chunks) + 2):
        if client._sock is None:
            break
        client.loop_read()
    client._sock = None
    return got, lean_count[0]


topics = st.one_of(
    st.text(min_size=1, max_size=40).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(min_size=1, max_size=10),  # not always valid UTF-8: paho keeps the bytes too
)
publishes = st.builds(
    lambda topic, payload, qos, mid, user: (topic, payload, qos, mid, user),
    topics,
    st.one_of(st.binary(max_size=300), st.binary(min_size=16_384, max_size=20_000)),
    st.sampled_from([0, 1]),
    st.integers(1, 65_535),
    st.booleans(),
)


@settings(max_examples=150, deadline=None)
@given(
    items=st.lists(st.one_of(publishes, st.just("ping")), max_size=25),
    cuts=st.lists(st.integers(0, 45_000), max_size=12),
    v5=st.booleans(),
)
def test_the_lean_path_delivers_exactly_what_paho_delivers(
    items: list[Any], cuts: list[int], v5: bool
) -> None:
    stream = b"".join(
        b"\xd0\x00" if item == "ping" else _publish_packet(*item[:4], v5=v5, user=item[4])
        for item in items
    )
    expected, _ = _receive(stream, cuts, v5=v5, lean=False)
    got, lean = _receive(stream, cuts, v5=v5, lean=True)
    assert got == expected
    assert len(expected) == sum(1 for i in items if i != "ping")
    plain = [i for i in items if i != "ping" and not (v5 and i[4])]
    if plain and not cuts:  # one read: every plain PUBLISH but the first takes the lean path
        assert lean >= len(plain) - 1


def test_a_malformed_publish_is_left_to_paho_which_drops_the_connection() -> None:
    good = _publish_packet(b"a/b", b"1", 1, 7, v5=False)
    # topic length 200 in a 10-byte packet
    bad = b"\x32\x0a" + struct.pack("!H", 200) + b"x" * 8
    client = BufferedReadClient(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="t",
        protocol=mqtt.MQTTv311,
        manual_ack=True,
    )
    got: list[Delivery] = []
    client.on_incoming_publish = lambda *a: got.append(a)
    client.on_message = lambda *_: got.append((b"paho", b"", 0, 0))
    client._sock = _Feed([good + good + bad + good])  # type: ignore[assignment]
    rc = client.loop_read()
    assert rc == mqtt.MQTT_ERR_PROTOCOL
    assert client._sock is None  # paho closed the connection
    # the first packet of a read goes through paho's parser, the second through the lean path
    assert got == [(b"paho", b"", 0, 0), (b"a/b", b"1", 1, 7)]


def test_bytes_taken_by_the_lean_path_count_for_the_keepalive() -> None:
    client = BufferedReadClient(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id="t", manual_ack=True
    )
    client.on_incoming_publish = lambda *_: None
    client.on_message = lambda *_: None
    packets = _publish_packet(b"t", b"x", 1, 1, v5=False) * 3
    client._sock = _Feed([packets])  # type: ignore[assignment]
    client._last_bytes_received = 0.0
    client.loop_read()
    assert client._last_bytes_received > 0.0
    assert client.buffered_bytes() == 0
    client._sock = None


@pytest.mark.parametrize("v5", [False, True])
def test_plain_publishes_of_every_length_take_the_lean_path(v5: bool) -> None:
    """Remaining lengths of one, two and three bytes; QoS 0 and 1; all in one read."""
    sizes = [0, 100, 127, 128, 5_000, 16_383, 16_384, 70_000]
    packets = [
        _publish_packet(f"d/{n}".encode(), bytes([n % 251]) * n, n % 2, n % 65_535 + 1, v5=v5)
        for n in sizes
    ]
    stream = packets[0] + b"".join(packets)  # the first of a read goes through paho
    got, lean = _receive(stream, [], v5=v5, lean=True)
    assert lean == len(sizes)
    assert [(t, len(p), q) for t, p, q, _ in got[1:]] == [
        (f"d/{n}".encode(), n, n % 2) for n in sizes
    ]
    assert [m for *_, m in got[1:]] == [n % 65_535 + 1 if n % 2 else 0 for n in sizes]
