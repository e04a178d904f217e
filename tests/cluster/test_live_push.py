"""Live pushes across workers (issue 16 part 5): what worker A's bus and notification hub
publish reaches worker B's live viewers through PostgreSQL LISTEN/NOTIFY exactly once, A's
own viewers get it once (not again from A's own NOTIFY), B's processing subscribers never
see it, a payload too large for NOTIFY travels by reference, and a dropped LISTEN
connection is re-established."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, insert, text

from gateway.bus import EventBus, Subscription
from gateway.cluster_push import MAX_PAYLOAD, ClusterPush
from gateway.config.settings import DatabaseConfig
from gateway.events import DeviceKind, Event, EventType
from gateway.notify.base import IncidentPlace
from gateway.notify.console import NotificationHub
from gateway.storage.db import make_engine, migrate
from gateway.storage.tables import events
from gateway.storage.writer import event_row
from tests.conftest import postgres_database

pytestmark = pytest.mark.postgres
T0 = datetime(2026, 5, 12, 2, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    """One migrated database for the module (dropped after)."""
    with postgres_database() as url:
        eng = make_engine(url)
        migrate(eng)
        try:
            yield eng
        finally:
            eng.dispose()


class Node:
    """A worker's process-local pieces: bus, hub, and its ClusterPush."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.bus = EventBus()
        self.hub = NotificationHub()
        self.push = ClusterPush(engine, self.bus, self.hub, name)


@pytest.fixture
async def nodes(engine: Engine) -> AsyncIterator[tuple[Node, Node]]:
    a, b = Node(engine, "worker-a"), Node(engine, "worker-b")
    loop = asyncio.get_running_loop()
    for node in (a, b):
        node.bus.bind(loop)
        await node.push.start()
    assert a.push.listening.is_set() and b.push.listening.is_set()
    try:
        yield a, b
    finally:
        await a.push.stop()
        await b.push.stop()


async def until(check: Callable[[], bool], within_s: float = 10.0) -> None:
    """Wait for a condition (the deadline only keeps a broken test from hanging)."""
    async with asyncio.timeout(within_s):
        while not check():  # noqa: ASYNC110 (counters have no event to wait on)
            await asyncio.sleep(0.01)


def event(n: int, big: bool = False) -> Event:
    extra = {f"k{i}": "x" * 400 for i in range(25)} if big else {}
    return Event(
        event_id=f"live-{n}-{'big' if big else 'small'}",
        occurred_at=T0,
        received_at=T0,
        site="demo-compound",
        device_id="door-b2u1",
        kind=DeviceKind.ACCESS,
        type=EventType.ACCESS_GRANTED,
        attributes={"kind": "access", "extra": extra},  # type: ignore[arg-type]
        source="test",
    )


def drain(sub: Subscription) -> list[Event]:
    out = []
    while not sub.queue.empty():
        out.append(sub.queue.get_nowait())
    return out


def test_live_push_defaults_on_for_postgresql_only() -> None:
    assert DatabaseConfig(url="postgresql+psycopg://db/lianfang").shares_live_pushes
    assert not DatabaseConfig(url="postgresql+psycopg://db/x", live_push=False).shares_live_pushes
    assert not DatabaseConfig(url="sqlite:///data/lianfang.db").shares_live_pushes
    assert not DatabaseConfig(url="sqlite:///data/lianfang.db", live_push=True).shares_live_pushes


async def test_an_event_on_worker_a_reaches_worker_b_viewers_exactly_once(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    a_viewer = a.bus.subscribe("api-sse-a", viewer=True)
    b_viewer = b.bus.subscribe("api-sse-b", viewer=True)
    b_processing = b.bus.subscribe("evidence")  # e.g. camera evidence: B's own events only
    a.bus.publish(event(1))
    a.bus.publish(event(2))
    await until(lambda: b.push.received >= 2)
    # a marker from B to A: once A has it, A has read everything NOTIFY sent before it
    b.bus.publish(event(3))
    await until(lambda: a.push.received >= 1)
    assert [e.event_id for e in drain(b_viewer)] == ["live-1-small", "live-2-small", "live-3-small"]
    assert [e.event_id for e in drain(a_viewer)] == ["live-1-small", "live-2-small", "live-3-small"]
    assert [e.event_id for e in drain(b_processing)] == ["live-3-small"]
    assert (a.push.received, b.push.received) == (1, 2)


async def test_a_notification_on_worker_a_reaches_worker_b_console_exactly_once(
    nodes: tuple[Node, Node],
) -> None:
    a, b = nodes
    seen_a: list[dict[str, Any]] = []
    seen_b: list[dict[str, Any]] = []
    allowed = IncidentPlace("cell-1", "demo-compound", None)

    async def watch(hub: NotificationHub, seen: list[dict[str, Any]]) -> None:
        async for item in hub.watch(lambda place, recipient: place == allowed):
            seen.append(item)

    tasks = [asyncio.create_task(watch(a.hub, seen_a)), asyncio.create_task(watch(b.hub, seen_b))]
    await until(lambda: a.hub.viewers == 1 and b.hub.viewers == 1)
    note = {"type": "notification", "notification_id": 7, "incident_id": 3, "title_zh": "一键报警"}
    a.hub.publish(note, "person/p-1", allowed)
    a.hub.publish({"type": "incident", "incident_id": 4}, None, IncidentPlace("cell-9"))  # not B's
    await until(lambda: b.push.received >= 2)
    # a marker from B to A, sent after B had A's items: once A shows it, A has read every
    # NOTIFY sent before (its own included, which it must skip)
    b.hub.publish({"type": "incident", "incident_id": 5}, None, allowed)
    await until(lambda: any(i.get("incident_id") == 5 for i in seen_a))
    await until(lambda: any(i.get("incident_id") == 5 for i in seen_b))
    for task in tasks:
        task.cancel()
    # each once; A's 4 (another cell) reaches neither; no order across workers
    assert sorted(i.get("incident_id") for i in seen_b if i["type"] != "subscribed") == [3, 5]
    assert sorted(i.get("incident_id") for i in seen_a if i["type"] != "subscribed") == [3, 5]
    assert note in seen_b


async def test_an_event_too_large_for_notify_travels_by_reference(
    engine: Engine, nodes: tuple[Node, Node]
) -> None:
    a, b = nodes
    big = event(4, big=True)
    assert len(big.model_dump_json()) > MAX_PAYLOAD
    b_viewer = b.bus.subscribe("api-sse-b", viewer=True)
    a.bus.publish(big)
    await asyncio.sleep(0)  # announced before it is stored: the listener looks again
    row = event_row(big)
    with engine.begin() as conn:
        conn.execute(insert(events), [row])
    await until(lambda: b.push.received >= 1)
    (got,) = drain(b_viewer)
    assert got.event_id == big.event_id and got.attributes == big.attributes


async def test_a_dropped_listen_connection_is_reestablished(
    engine: Engine, nodes: tuple[Node, Node]
) -> None:
    a, b = nodes
    b_viewer = b.bus.subscribe("api-sse-b", viewer=True)
    with engine.connect() as conn:  # cut every LISTEN connection on this database
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
            )
        )
    await until(lambda: not b.push.listening.is_set())
    await until(b.push.listening.is_set)
    a.bus.publish(event(5))
    await until(lambda: b.push.received >= 1)
    assert [e.event_id for e in drain(b_viewer)] == ["live-5-small"]
