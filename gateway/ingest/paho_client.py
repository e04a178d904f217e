"""paho's client with buffered socket reads.

paho reads every packet with several small ``recv`` calls (one byte of packet type, one per
byte of remaining length, then the body) and goes back to ``select`` after each packet: five
system calls per message. Each releases the GIL, and at thousands of messages a second the
receive thread then queues behind the rules, incident and writer threads for it again, over
and over. Measured on the ingest benchmark, that hand-off cost more CPU than the work itself.

``BufferedReadClient`` changes only where the bytes come from: one ``recv`` takes whatever the
kernel holds (up to 256 KiB) and paho's own parser consumes it from memory; ``loop_read`` keeps
parsing while buffered bytes remain, so nothing waits in the buffer while paho sleeps in
``select``, then calls ``on_read_done``. Protocol handling, keepalive, reconnects and TLS stay
paho's.

MQTT 5 costs paho a second, similar amount per message: every PUBLISH builds a
``Properties`` object whose constructor fills three lookup tables (27 names) and whose parser
first clears all 27 attributes, even when the packet carries no properties, the usual case.
``install_shared_property_tables`` makes paho's packet decoder build them with the tables
shared (paho only reads them) and skip the clearing for an empty property block. Parsed
properties are the same objects with the same attributes.

With the bytes in memory, paho still spends most of its per-message time on bookkeeping
around the parse (a packet-state dict, an ``MQTTMessage``, the callback mutexes, the
topic-filter matcher, debug-log formatting). ``on_incoming_publish`` is a lean path for the
one packet that arrives thousands of times a second: a complete QoS 0/1 PUBLISH without
properties at the front of the buffer is cut out of it here (fixed header, topic, packet id,
an empty v5 property block) and handed to ``on_incoming_publish(topic, payload, qos, mid)``
directly. Everything else (partial packets, properties, QoS 2, CONNACK, SUBACK, PINGRESP,
anything malformed) goes to paho's own parser, with its state untouched. Keepalive sees the
bytes as paho would.

``_sock_recv``, ``_packet_read`` and ``paho.mqtt._packet`` are private to paho (stable
through 2.2; pyproject keeps paho below 3). ``tests/test_paho_client.py`` checks the
behaviour relied on (the lean path against paho's own parser), and the shared property tables
are skipped if paho's layout is not the expected one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

READ_SIZE = 256 * 1024
_PUBLISH = 0x30
_MAX_LENGTH_BYTES = 4  # remaining length: 4 bytes at most (MQTT 3.1.1 2.2.3, 5.0 1.5.5)

# (topic bytes, payload, qos 0 or 1, packet id or 0)
PublishHandler = Callable[[bytes, bytes, int, int], None]


_TABLES = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]


class SharedTableProperties(Properties):
    """paho's ``Properties`` with its (read-only) lookup tables shared between instances."""

    def __init__(self, packetType: int) -> None:  # paho passes it by this name
        object.__setattr__(self, "packetType", packetType)
        object.__setattr__(self, "types", _TABLES.types)
        object.__setattr__(self, "names", _TABLES.names)
        object.__setattr__(self, "properties", _TABLES.properties)

    def unpack(self, buffer: bytes) -> tuple[Properties, int]:
        if buffer[:1] == b"\x00":  # property length 0: a fresh object has nothing to clear
            return self, 1
        return super().unpack(buffer)  # type: ignore[no-any-return,no-untyped-call]


def install_shared_property_tables() -> bool:
    """Make paho's packet decoder use ``SharedTableProperties``; False if paho differs."""
    current = getattr(_packet, "Properties", None)
    if current is SharedTableProperties:
        return True
    if current is not Properties:
        return False
    setattr(_packet, "Properties", SharedTableProperties)  # noqa: B010 (a private module)
    return True


class BufferedReadClient(mqtt.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        install_shared_property_tables()
        self._read_buffer = b""
        self._read_pos = 0
        self._read_sock: object | None = None  # the socket the buffered bytes came from
        # Called on the network thread once everything read so far has been parsed (and its
        # messages delivered to on_message): the moment to hand work on in one go.
        self.on_read_done: Callable[[], None] | None = None
        # The lean path for plain QoS 0/1 PUBLISH packets (module doc); None: paho's on_message.
        self.on_incoming_publish: PublishHandler | None = None

    def buffered_bytes(self) -> int:
        """Bytes read from the socket that paho has not parsed yet."""
        if self._read_sock is not self._sock:
            return 0
        return len(self._read_buffer) - self._read_pos

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._read_sock is not self._sock:  # a new connection: old bytes are meaningless
            self._read_buffer, self._read_pos, self._read_sock = b"", 0, self._sock
        buffer, start = self._read_buffer, self._read_pos
        if start >= len(buffer):
            data: bytes = super()._sock_recv(max(bufsize, READ_SIZE))  # raises when none
            if len(data) <= bufsize:  # at most what was asked: nothing to keep
                self._read_buffer, self._read_pos = b"", 0
                return data
            self._read_buffer, self._read_pos = buffer, start = data, 0
        end = min(start + bufsize, len(buffer))
        self._read_pos = end
        return buffer[start:end]

    def _packet_read(self) -> MQTTErrorCode:
        handler = self.on_incoming_publish
        if (
            handler is not None
            and self._in_packet["command"] == 0  # no packet half-read by paho
            and self._read_sock is self._sock
            and self._read_pos < len(self._read_buffer)
            and self._publishes_from_buffer(handler)
        ):
            with self._msgtime_mutex:
                self._last_bytes_received = mqtt.time_func()
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._packet_read()

    def _publishes_from_buffer(self, handler: PublishHandler) -> int:
        """Hand every complete plain PUBLISH at the front of the buffer to ``handler``; stop
        at the first packet that is anything else or not all here. Returns how many."""
        buf = self._read_buffer
        end = len(buf)
        v5 = self._protocol == mqtt.MQTTv5
        handled = 0
        pos = self._read_pos
        while pos < end:
            first = buf[pos]
            qos = (first >> 1) & 3
            if first & 0xF0 != _PUBLISH or qos > 1:
                break
            length, multiplier, i = 0, 1, pos + 1
            while True:
                if i >= end or i - pos > _MAX_LENGTH_BYTES:
                    return handled  # not all here, or malformed: paho's parser decides
                byte = buf[i]
                i += 1
                length += (byte & 0x7F) * multiplier
                multiplier <<= 7
                if byte < 0x80:
                    break
            body_end = i + length
            if body_end > end or length < 2:
                break
            topic_end = i + 2 + ((buf[i] << 8) | buf[i + 1])
            mid = 0
            at = topic_end
            if qos:
                mid = (buf[at] << 8) | buf[at + 1] if at + 2 <= body_end else 0
                at += 2
            if v5:
                if at >= body_end or buf[at] != 0:  # properties, or no room for them
                    break
                at += 1
            if at > body_end or (qos and mid == 0):  # malformed: paho says so
                break
            pos = body_end
            self._read_pos = pos  # consumed before the handler runs, whatever it does
            handler(buf[i + 2 : topic_end], buf[at:body_end], qos, mid)
            handled += 1
        return handled

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        try:
            rc = super().loop_read(max_packets)
            while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self.buffered_bytes() > 0:
                rc = super().loop_read(max_packets)
            return rc
        finally:
            if self.on_read_done is not None:
                self.on_read_done()
