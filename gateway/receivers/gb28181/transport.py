"""SIP over UDP (a message per datagram) and TCP (messages framed by Content-Length, RFC 3261
§18.3) for the GB/T 28181 server.

Answers and requests go to the address a message came from — the UDP source, or the TCP
connection it arrived on — never to a host a device advertises in Via or Contact.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import re
import socket
from collections.abc import Awaitable, Callable

from gateway.receivers.gb28181.sip import Peer

log = logging.getLogger(__name__)

Handler = Callable[[bytes, Peer], Awaitable[None]]
_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*([0-9]{1,9})[ \t]*$", re.I | re.M)
MAX_CONNECTIONS = 1024
IDLE_TIMEOUT_S = 600.0  # a TCP device sends a keepalive at least every minute or two

FREE_PORT_ATTEMPTS = 20  # port 0: pairs of UDP and TCP ports tried


class FramingError(Exception):
    pass


def next_message(buffer: bytearray, limit: int) -> bytes | None:
    """Cut one complete message off the front of a TCP stream buffer (None: need more)."""
    while buffer[:2] == b"\r\n":  # keep-alive CRLFs (RFC 5626) between messages
        del buffer[:2]
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > limit:
            raise FramingError(f"no end of headers within {limit} bytes")
        return None
    match = _LENGTH.search(bytes(buffer[:end]))
    if match is None:
        raise FramingError("a message over TCP without Content-Length")
    total = end + 4 + int(match.group(1))
    if total > limit:
        raise FramingError(f"message of {total} bytes (at most {limit})")
    if len(buffer) < total:
        return None
    message = bytes(buffer[:total])
    del buffer[:total]
    return message


class SipTransport:
    def __init__(
        self, host: str, port: int, *, udp: bool, tcp: bool, limit: int, handler: Handler
    ) -> None:
        self.host, self.port = host, port
        self.use_udp, self.use_tcp = udp, tcp
        self.limit = limit
        self.handler = handler
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._writers: dict[Peer, asyncio.StreamWriter] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.udp_port: int | None = None
        self.tcp_port: int | None = None

    async def start(self) -> None:
        """Listen on ``port`` (UDP and TCP on the same number). With port 0, a free UDP port
        is taken and TCP on the same number; when another program holds that one for TCP,
        another pair is tried."""
        for attempt in range(FREE_PORT_ATTEMPTS):
            try:
                await self._bind(self.port)
                return
            except OSError as exc:
                self._unbind()
                if self.port or exc.errno != errno.EADDRINUSE or attempt == FREE_PORT_ATTEMPTS - 1:
                    raise

    async def _bind(self, port: int) -> None:
        if self.use_udp:
            loop = asyncio.get_running_loop()
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self), local_addr=(self.host, port)
            )
            self._udp = transport
            self.udp_port = transport.get_extra_info("sockname")[1]
            port = port or self.udp_port
        if self.use_tcp:
            self._tcp = await asyncio.start_server(self._serve, self.host, port)
            self.tcp_port = self._tcp.sockets[0].getsockname()[1]

    def _unbind(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        self._udp, self._tcp, self.udp_port, self.tcp_port = None, None, None, None

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for writer in list(self._writers.values()):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def send(self, peer: Peer, data: bytes) -> bool:
        """To the peer's own address or connection; False when it is gone."""
        if peer.transport == "udp":
            if self._udp is None or self._udp.is_closing():
                return False
            self._udp.sendto(data, (peer.host, peer.port))
            return True
        writer = self._writers.get(peer)
        if writer is None or writer.is_closing():
            return False
        writer.write(data)
        return True

    def local_address(self, peer: Peer) -> tuple[str, int]:
        """Our address as the peer sees it (for the Via of our requests)."""
        port = (self.udp_port if peer.transport == "udp" else self.tcp_port) or self.port
        if self.host not in ("0.0.0.0", "::", ""):
            return self.host, port
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # no packet is sent
            probe.connect((peer.host, peer.port))
            return probe.getsockname()[0], port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = writer.get_extra_info("peername")[:2]
        peer = Peer("tcp", host, port)
        if len(self._writers) >= MAX_CONNECTIONS:
            writer.close()
            return
        self._writers[peer] = writer
        buffer = bytearray()
        try:
            while True:
                chunk = await asyncio.wait_for(reader.read(65536), IDLE_TIMEOUT_S)
                if not chunk:
                    return
                buffer += chunk
                while (message := next_message(buffer, self.limit)) is not None:
                    await self.handler(message, peer)
        except FramingError as exc:
            log.warning("GB28181 TCP %s closed: %s", peer, exc)
            await self.handler(bytes(buffer[: self.limit]) or b"-", peer)  # quarantined there
        except (TimeoutError, ConnectionError):
            pass
        finally:
            self._writers.pop(peer, None)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, transport: SipTransport) -> None:
        self.owner = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data.strip(b"\r\n\x00 ") == b"":
            return  # keep-alive pings
        peer = Peer("udp", str(addr[0]), int(addr[1]))
        self.owner.spawn(self.owner.handler(data, peer))
