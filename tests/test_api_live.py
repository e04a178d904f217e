"""Live events over Server-Sent Events and WebSocket.

httpx's ASGI transport buffers whole responses, so these tests speak ASGI to the app
directly: they see each chunk as it is sent and can disconnect like a browser would.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from gateway.api import create_app
from gateway.bus import EventBus
from gateway.events import DeviceKind, EventType
from gateway.storage.db import make_engine, migrate
from tests.support.auth import trusted
from tests.test_api import StubRuntime, make_event

TIMEOUT = 5.0  # generous upper bound for one step; nothing here measures time


class AsgiConnection:
    """One HTTP or WebSocket connection driven by hand."""

    def __init__(
        self,
        app: FastAPI,
        kind: str,
        path: str,
        params: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        self.kind = kind
        self.sent: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._gone = asyncio.Event()
        self._opened = False
        scope: dict[str, Any] = {
            "type": kind,
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "scheme": "ws" if kind == "websocket" else "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": urlencode(params, doseq=True).encode(),
            "headers": [(b"host", b"gateway.test")]
            + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
            "client": ("127.0.0.1", 50000),
            "server": ("gateway.test", 80),
            "state": {},
        }
        if kind == "http":
            scope["method"] = "GET"
            scope["headers"].append((b"accept", b"text/event-stream"))
        else:
            scope["subprotocols"] = []
        self.task = asyncio.create_task(app(scope, self._receive, self._send))

    async def _receive(self) -> dict[str, Any]:
        if not self._opened:
            self._opened = True
            if self.kind == "http":
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "websocket.connect"}
        await self._gone.wait()
        if self.kind == "http":
            return {"type": "http.disconnect"}
        return {"type": "websocket.disconnect", "code": 1000}

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        await self.sent.put(dict(message))

    async def next_message(self) -> dict[str, Any]:
        return await asyncio.wait_for(self.sent.get(), TIMEOUT)

    async def disconnect(self) -> None:
        self._gone.set()
        await asyncio.wait_for(self.task, TIMEOUT)


class SseReader:
    def __init__(self, conn: AsgiConnection) -> None:
        self.conn = conn
        self.buffer = ""
        self.status: int | None = None
        self.headers: dict[str, str] = {}

    async def block(self) -> str:
        """The next complete SSE block (event, comment or ping)."""
        while "\r\n\r\n" not in self.buffer:
            message = await self.conn.next_message()
            if message["type"] == "http.response.start":
                self.status = message["status"]
                self.headers = {k.decode(): v.decode() for k, v in message["headers"]}
            elif message["type"] == "http.response.body":
                self.buffer += message.get("body", b"").decode()
        block, self.buffer = self.buffer.split("\r\n\r\n", 1)
        return block

    async def until(self, predicate: Callable[[str], bool]) -> str:
        while True:
            block = await self.block()
            if predicate(block):
                return block


def data_of(block: str) -> dict[str, Any]:
    lines = [line[len("data: ") :] for line in block.split("\r\n") if line.startswith("data: ")]
    result: dict[str, Any] = json.loads("\n".join(lines))
    return result


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    eng = make_engine(f"sqlite:///{tmp_path / 'lianfang.db'}")
    migrate(eng)
    return eng


@pytest.fixture
async def bus() -> AsyncIterator[EventBus]:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    yield bus


@pytest.fixture
def app(engine: Engine, bus: EventBus) -> FastAPI:
    return trusted(create_app(StubRuntime(engine, bus)))


def subscribers(bus: EventBus) -> int:
    return len(bus._subs)


async def test_sse_delivers_matching_bus_events(app: FastAPI, bus: EventBus) -> None:
    conn = AsgiConnection(app, "http", "/api/events/stream", {"site": "s1", "type": "panic,tamper"})
    sse = SseReader(conn)
    first = await sse.block()
    assert sse.status == 200
    assert sse.headers["content-type"].startswith("text/event-stream")
    assert ": subscribed" in first and "retry:" in first
    assert subscribers(bus) == 1

    bus.publish(make_event(1, site="s2", type=EventType.PANIC))  # other site
    bus.publish(make_event(2, type=EventType.ACCESS_GRANTED))  # other type
    # from another thread, as the MQTT receive thread does
    panic = make_event(3, device_id="sos-7", kind=DeviceKind.ALARM, type=EventType.PANIC)
    await asyncio.to_thread(bus.publish, panic)

    block = await sse.until(lambda b: "data:" in b)
    data = data_of(block)
    assert data["event_id"] == "e0003"
    assert data["seq"] is None and data["kind"] == "alarm" and data["type"] == "panic"
    assert data["occurred_at"] == "2026-05-01T00:03:00Z"
    assert "event:" not in block  # unnamed: EventSource.onmessage sees it

    await conn.disconnect()
    assert subscribers(bus) == 0


async def test_sse_reports_missed_events_when_viewer_falls_behind(
    app: FastAPI, bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.api.live.VIEWER_QUEUE", 2)
    conn = AsgiConnection(app, "http", "/api/events/stream", {})
    sse = SseReader(conn)
    await sse.block()
    for n in range(5):  # delivered synchronously on this loop: the queue overflows
        bus.publish(make_event(n))
    missed = await sse.until(lambda b: "event: missed" in b)
    assert data_of(missed) == {"count": 3}
    later = [data_of(await sse.until(lambda b: "data:" in b))["event_id"] for _ in range(2)]
    assert later == ["e0003", "e0004"]
    await conn.disconnect()
    assert subscribers(bus) == 0


async def test_sse_rejects_bad_filters(app: FastAPI, bus: EventBus) -> None:
    conn = AsgiConnection(app, "http", "/api/events/stream", {"kind": "toaster"})
    start = await conn.next_message()
    assert start["status"] == 422
    body = await conn.next_message()
    assert "unknown kind" in body["body"].decode()
    await conn.disconnect()
    assert subscribers(bus) == 0


async def test_websocket_delivers_matching_bus_events(app: FastAPI, bus: EventBus) -> None:
    conn = AsgiConnection(app, "websocket", "/api/events/ws", {"kind": "gate"})
    assert (await conn.next_message())["type"] == "websocket.accept"
    hello = await conn.next_message()
    assert json.loads(hello["text"]) == {"type": "subscribed"}

    bus.publish(make_event(1))  # access: filtered out
    bus.publish(make_event(2, device_id="gate-1", kind=DeviceKind.GATE, type=EventType.PLATE_READ))
    message = json.loads((await conn.next_message())["text"])
    assert message["type"] == "event"
    assert message["event"]["event_id"] == "e0002" and message["event"]["kind"] == "gate"

    await conn.disconnect()
    assert subscribers(bus) == 0


async def test_websocket_bad_filter_closes_with_policy_violation(
    app: FastAPI, bus: EventBus
) -> None:
    conn = AsgiConnection(app, "websocket", "/api/events/ws", {"type": "nonsense"})
    message = await conn.next_message()
    assert message["type"] == "websocket.close"
    assert message["code"] == 1008 and "unknown type" in message["reason"]
    await asyncio.wait_for(conn.task, TIMEOUT)
    assert subscribers(bus) == 0
