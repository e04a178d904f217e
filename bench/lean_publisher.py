"""A QoS 1 load generator that costs the machine as little CPU as possible.

The benchmarks run the devices, the broker and the gateway on the same two cores. In the
field the devices are hundreds of separate boxes; here one process stands in for all of
them, and every microsecond it spends per message is taken from the system under test.
paho costs about 70 µs of CPU per QoS 1 publish (its per-message bookkeeping, locks and
wake-ups), more than Mosquitto itself. This publisher writes ready-made MQTT 3.1.1 PUBLISH
packets in large writes and counts PUBACKs on a reader thread: a few µs per message.

It is a load generator for `bench/`, not a client: no reconnects, no retransmission, no
TLS. If the broker drops the connection the run fails loudly. Only the gateway's side of the
benchmark is measured with a real client library.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

_U16 = struct.Struct("!H")
CONNACK = 0x20
PUBACK = 0x40
PUBLISH_QOS1 = 0x32
MAX_PACKET_ID = 65_535


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(text: str) -> bytes:
    data = text.encode()
    return _U16.pack(len(data)) + data


def connect_packet(client_id: str, keepalive_s: int) -> bytes:
    # Protocol "MQTT" level 4 (3.1.1), flags: clean session.
    variable = _utf8("MQTT") + bytes([4, 0x02]) + _U16.pack(keepalive_s)
    body = variable + _utf8(client_id)
    return bytes([0x10]) + _remaining_length(len(body)) + body


class Template:
    """One message with a publish timestamp filled in at send time (JSON key "ts")."""

    __slots__ = ("head", "length_without_ts", "prefix")

    def __init__(self, topic: str, body: dict[str, Any]) -> None:
        encoded = json.dumps(body, ensure_ascii=False).encode()
        assert encoded.endswith(b"}")
        self.head = _utf8(topic)
        self.prefix = encoded[:-1] + (b', "ts": ' if len(body) else b'"ts": ')
        self.length_without_ts = len(self.head) + 2 + len(self.prefix) + 1  # + pid + "}"

    def packet(self, packet_id: int, ts: bytes) -> bytes:
        return b"".join(
            (
                b"\x32",
                _remaining_length(self.length_without_ts + len(ts)),
                self.head,
                _U16.pack(packet_id),
                self.prefix,
                ts,
                b"}",
            )
        )


class LeanPublisher:
    """Publish templates at QoS 1 with at most ``window`` unacknowledged messages."""

    def __init__(self, port: int, client_id: str, *, window: int = 4096, chunk: int = 128) -> None:
        if window >= MAX_PACKET_ID:
            raise ValueError("the window must stay below the 16-bit packet id space")
        self.window = window
        self.chunk = chunk
        self.acked = 0
        self._cond = threading.Condition()
        self._sock = socket.create_connection(("127.0.0.1", port))
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.sendall(connect_packet(client_id, keepalive_s=600))
        connack = self._recv_exact(4)
        if connack[0] != CONNACK or connack[3] != 0:
            raise ConnectionError(f"broker refused the connection: {connack!r}")
        self._reader = threading.Thread(target=self._read_acks, daemon=True)
        self._reader.start()

    def _recv_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            part = self._sock.recv(n - len(data))
            if not part:
                raise ConnectionError("broker closed the connection")
            data += part
        return data

    def _read_acks(self) -> None:
        pending = b""
        while True:
            try:
                data = self._sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            pending += data
            # Only PUBACKs (4 bytes) arrive after CONNACK on a publish-only connection.
            whole = len(pending) // 4 * 4
            if not whole:
                continue
            if pending[0:whole:4].count(PUBACK) != whole // 4:
                raise ConnectionError(f"unexpected packet from the broker: {pending[:16]!r}")
            with self._cond:
                self.acked += whole // 4
                self._cond.notify_all()
            pending = pending[whole:]

    def publish_all(
        self,
        templates: Sequence[Template],
        rate: float | None = None,
        on_sent: Callable[[int, int, float], None] | None = None,
    ) -> None:
        """Send every template once, stamping each with the time it is handed to the socket;
        at most ``rate`` messages a second when given (else as fast as the broker takes them).
        ``on_sent(start, end, ts)`` is told each chunk handed to the socket."""
        sent = 0
        packet_id = 0
        total = len(templates)
        started = time.monotonic()
        while sent < total:
            if rate:
                ahead = started + sent / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            with self._cond:
                while sent - self.acked > self.window - self.chunk:
                    self._cond.wait(1.0)
            end = min(sent + self.chunk, total)
            now = time.time()
            ts = f"{now:.6f}".encode()
            packets = []
            for template in templates[sent:end]:
                packet_id = packet_id % MAX_PACKET_ID + 1
                packets.append(template.packet(packet_id, ts))
            self._sock.sendall(b"".join(packets))
            if on_sent is not None:
                on_sent(sent, end, now)
            sent = end

    def publish_raw(
        self, messages: Sequence[tuple[str, bytes]], stamp: Sequence[int] = ()
    ) -> dict[int, float]:
        """Send (topic, payload) pairs as they are (any bytes), as fast as the broker takes
        them; returns the wall-clock time each index in ``stamp`` was handed to the socket."""
        sent_at: dict[int, float] = {}
        marks = set(stamp)
        sent = 0
        packet_id = 0
        total = len(messages)
        while sent < total:
            with self._cond:
                while sent - self.acked > self.window - self.chunk:
                    self._cond.wait(1.0)
            end = min(sent + self.chunk, total)
            packets = []
            for topic, payload in messages[sent:end]:
                packet_id = packet_id % MAX_PACKET_ID + 1
                head = _utf8(topic)
                packets.append(
                    b"".join(
                        (
                            b"\x32",
                            _remaining_length(len(head) + 2 + len(payload)),
                            head,
                            _U16.pack(packet_id),
                            payload,
                        )
                    )
                )
            now = time.time()
            sent_at.update((i, now) for i in marks.intersection(range(sent, end)))
            self._sock.sendall(b"".join(packets))
            sent = end
        return sent_at

    def wait_acked(self, count: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self.acked < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def close(self) -> None:
        try:
            self._sock.sendall(b"\xe0\x00")  # DISCONNECT
        finally:
            self._sock.close()
