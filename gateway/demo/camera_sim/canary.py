"""A loopback HTTP server that only records whether anyone fetched it.

Hostile cameras point XXE payloads and foreign addresses at it; a safe client never calls it.
"""

from __future__ import annotations

import asyncio


class Canary:
    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.hits: list[str] = []  # request lines received
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/canary"

    @property
    def base(self) -> str:
        return f"{self.host}:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 2)
            self.hits.append(line.decode("latin-1").strip() or "<connection>")
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nfetched"
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            self.hits.append("<connection>")
        finally:
            writer.close()
