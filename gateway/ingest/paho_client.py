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

``_sock_recv`` and ``paho.mqtt._packet`` are private to paho (stable through 2.2; pyproject
keeps paho below 3). ``tests/test_paho_client.py`` checks the behaviour relied on, and the fast
path is skipped if paho's layout is not the expected one.
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

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        try:
            rc = super().loop_read(max_packets)
            while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self.buffered_bytes() > 0:
                rc = super().loop_read(max_packets)
            return rc
        finally:
            if self.on_read_done is not None:
                self.on_read_done()
