"""The DC-09 listeners: TCP (frames end with CR, one answer per frame, in order) and UDP (one
frame per datagram, answered to the sender's address). Both feed ``SiaReceiver.handle``.

A connection that sends more than a frame's worth of bytes without a CR gets a NAK and is
closed; an idle one is closed after ``idle_timeout_s``; beyond ``max_connections`` new ones
are refused. Nothing a peer sends can stop the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Coroutine
from typing import Any, cast

from gateway.ingest.reasons import Reason
from gateway.receivers.sia import frame as f
from gateway.receivers.sia.receiver import SOURCE, SiaReceiver

log = logging.getLogger(__name__)

MAX_UDP_PENDING = 1024  # datagrams being handled at once; more are answered NAK

FREE_PORT_ATTEMPTS = 20  # port 0: pairs of TCP and UDP ports tried


class SiaServer:
    def __init__(self, receiver: SiaReceiver) -> None:
        self.receiver = receiver
        self.config = receiver.config
        self._tcp: asyncio.Server | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connections = 0
        self.tcp_port: int | None = None
        self.udp_port: int | None = None

    async def start(self) -> None:
        """Listen on TCP and UDP on the same number. With port 0, a free TCP port is taken
        and UDP on the same number; when another program holds that one for UDP, another
        pair is tried."""
        for attempt in range(FREE_PORT_ATTEMPTS):
            try:
                await self._bind(self.config.host, self.config.port)
                break
            except OSError as exc:
                self._unbind()
                last = attempt == FREE_PORT_ATTEMPTS - 1
                if self.config.port or exc.errno != errno.EADDRINUSE or last:
                    raise
        self._spawn(self.receiver.supervision.run())
        log.info(
            "SIA DC-09 receiver on %s (tcp %s, udp %s)",
            self.config.host, self.tcp_port, self.udp_port,
        )  # fmt: skip

    async def _bind(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        if self.config.tcp:
            self._tcp = await asyncio.start_server(self._serve, host, port, limit=f.MAX_FRAME)
            self.tcp_port = self._tcp.sockets[0].getsockname()[1]
            port = port or self.tcp_port  # UDP on the same number when 0 asked for a free one
        if self.config.udp:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Datagrams(self), local_addr=(host, port)
            )
            self._udp = transport
            self.udp_port = transport.get_extra_info("sockname")[1]

    def _unbind(self) -> None:
        if self._tcp is not None:
            self._tcp.close()
        if self._udp is not None:
            self._udp.close()
        self._tcp, self._udp, self.tcp_port, self.udp_port = None, None, None, None

    async def stop(self) -> None:
        if self._tcp is not None:
            self._tcp.close()
        if self._udp is not None:
            self._udp.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._tcp is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 2)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- TCP ---------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer(writer.get_extra_info("peername"))
        if self._connections >= self.config.max_connections:
            log.warning("SIA: connection from %s refused (%d open)", peer, self._connections)
            writer.close()
            return
        self._connections += 1
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await self._frames(reader, writer, peer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass  # the receiver is stopping: the connection ends here (a leaf task)
        finally:
            self._connections -= 1
            if task is not None:
                self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _frames(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        while True:
            try:
                raw = await asyncio.wait_for(reader.readuntil(b"\r"), self.config.idle_timeout_s)
            except TimeoutError:
                return
            except asyncio.LimitOverrunError:
                self.receiver.sink.quarantine(
                    source=f"{SOURCE}/tcp/{peer}",
                    reason=Reason.OVERSIZE,
                    detail=f"more than {f.MAX_FRAME} bytes without a frame end (CR)",
                    device_id=None,
                    raw=b"",
                )
                writer.write(f.nak(self.receiver.clock()))
                await writer.drain()
                return
            if not raw.strip(b"\r\n\x00 "):
                continue  # keep-alive line feeds
            answer = await self.receiver.handle(raw, transport="tcp", peer=peer)
            if answer is not None:
                writer.write(answer)
                await writer.drain()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, server: SiaServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None
        self.pending = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (CPython's UDP transport is not a subclass of asyncio.DatagramTransport)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        receiver = self.server.receiver
        if self.pending >= MAX_UDP_PENDING:
            self._send(f.nak(receiver.clock()), addr)
            return
        self.pending += 1
        self.server._spawn(self._answer(data, addr))

    async def _answer(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        try:
            answer = await self.server.receiver.handle(data, transport="udp", peer=_peer(addr))
        finally:
            self.pending -= 1
        if answer is None:
            return
        if b'"NAK"' in answer[:16] and len(data) < len(answer):
            return  # no answer larger than a short unreadable datagram (spoofed-source floods)
        self._send(answer, addr)

    def _send(self, answer: bytes, addr: tuple[str | object, ...]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(answer, addr)


def _peer(addr: object) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"{addr[0]}:{addr[1]}"
    return str(addr)
