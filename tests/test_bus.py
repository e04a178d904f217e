"""EventBus: thread-safe publishing; batch subscribers get every event in order, one list
per hand-off; per-event subscribers as before (bounded ones drop their oldest)."""

from __future__ import annotations

import asyncio
import threading

from gateway.bus import EventBus
from gateway.events import Event
from tests.rules.rules_helpers import ev


def events(n: int, start: int = 0) -> list[Event]:
    return [ev("heartbeat", i, kind="access", event_id=f"e{i}") for i in range(start, start + n)]


async def test_batches_from_another_thread_arrive_whole_and_in_order() -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    batches = bus.subscribe_batches("rules")
    single = bus.subscribe("viewer", maxsize=10)  # bounded: keeps the newest
    sent = [events(50, 0), events(7, 50), events(100, 57)]

    def publisher() -> None:
        for chunk in sent:
            bus.publish_many(chunk)

    thread = threading.Thread(target=publisher)
    thread.start()
    thread.join()
    got: list[Event] = []
    while len(got) < 157:
        got += await asyncio.wait_for(batches.get(), 5)
    assert [e.event_id for e in got] == [f"e{i}" for i in range(157)]
    assert batches.pending == 0 and batches.queue.empty()
    assert bus.published == 157
    assert single.queue.qsize() == 10 and single.dropped == 147
    assert (await single.get()).event_id == "e147"


async def test_publishing_on_the_loop_delivers_at_once() -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    batches = bus.subscribe_batches("rules")
    bus.publish_many(events(3))
    assert batches.pending == 3
    assert [e.event_id for e in await batches.get()] == ["e0", "e1", "e2"]
    bus.unsubscribe(batches)
    bus.publish_many(events(2, 3))
    assert batches.queue.empty()
