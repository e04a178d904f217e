"""The live event stream (/api/events/stream, /api/events/ws) is masked and narrowed to the
caller's sites exactly like /api/events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from gateway.api import create_app
from gateway.auth.principal import Permission, Principal, Scope
from gateway.bus import EventBus
from gateway.events import DeviceKind, EventType
from gateway.storage.db import make_engine, migrate
from tests.support.auth import trusted
from tests.test_api import StubRuntime, make_event
from tests.test_api_live import AsgiConnection, SseReader, data_of

PM = Principal(
    "pm",
    frozenset({Permission.EVENTS_READ.value}),
    role="property_manager",
    scope=Scope(sites=frozenset({"s1"}), incident_sites=frozenset({"s1"})),
)


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
    return trusted(create_app(StubRuntime(engine, bus)), PM)


def _plates(bus: EventBus) -> None:
    gate = {"device_id": "gate-1", "kind": DeviceKind.GATE, "type": EventType.PLATE_READ}
    bus.publish(make_event(1, site="s2", attributes={"plate": "浙B54321"}, **gate))  # type: ignore[arg-type]
    bus.publish(make_event(2, site="s1", attributes={"plate": "浙A12345"}, **gate))  # type: ignore[arg-type]


async def test_sse_is_masked_and_limited_to_own_sites(app: FastAPI, bus: EventBus) -> None:
    conn = AsgiConnection(app, "http", "/api/events/stream", {})
    sse = SseReader(conn)
    assert ": subscribed" in await sse.block()
    _plates(bus)
    event = data_of(await sse.until(lambda b: "data:" in b))
    assert event["site"] == "s1"
    assert event["attributes"]["plate"] == "浙A***45"
    await conn.disconnect()


async def test_sse_other_site_asked_for_gives_nothing(app: FastAPI, bus: EventBus) -> None:
    conn = AsgiConnection(app, "http", "/api/events/stream", {"site": "s2"})
    sse = SseReader(conn)
    assert ": subscribed" in await sse.block()
    _plates(bus)
    bus.publish(make_event(3, site="s2", type=EventType.PANIC))
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sse.until(lambda b: "data:" in b), 0.3)
    await conn.disconnect()


async def test_websocket_is_masked_and_limited_to_own_sites(app: FastAPI, bus: EventBus) -> None:
    conn = AsgiConnection(app, "websocket", "/api/events/ws", {})
    assert (await conn.next_message())["type"] == "websocket.accept"
    assert json.loads((await conn.next_message())["text"]) == {"type": "subscribed"}
    _plates(bus)
    message = json.loads((await conn.next_message())["text"])
    assert message["event"]["site"] == "s1"
    assert message["event"]["attributes"]["plate"] == "浙A***45"
    assert "浙A12345" not in json.dumps(message, ensure_ascii=False)
    await conn.disconnect()
