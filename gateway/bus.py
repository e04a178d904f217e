"""In-process event bus: fan-out of validated events to asyncio subscribers.

``publish`` is thread-safe (the MQTT receive thread calls it). Events are published as soon
as they are validated, before the storage commit, so the alarm path never waits behind bulk
writes; consumers must therefore be idempotent on ``event_id`` (a crash before the commit means
the broker redelivers the message).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from gateway.events import Event

log = logging.getLogger(__name__)


@dataclass
class Subscription:
    name: str
    queue: asyncio.Queue[Event]
    critical: bool
    dropped: int = 0
    _closed: bool = field(default=False, repr=False)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while not self._closed:
            yield await self.queue.get()

    async def get(self) -> Event:
        return await self.queue.get()


class EventBus:
    """Fan-out to subscribers. Critical subscribers (rules) get every event; others (live
    viewers) have bounded queues and lose their oldest events when they fall behind."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        self._subs: list[Subscription] = []
        self.published = 0
        # Events from other threads wait here; one loop wake-up drains them all, so a burst
        # costs one self-pipe write instead of one per event.
        self._inbox: deque[Event] = deque()
        self._drain_scheduled = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(self, name: str, *, critical: bool = False, maxsize: int = 1000) -> Subscription:
        queue: asyncio.Queue[Event] = asyncio.Queue(0 if critical else maxsize)
        sub = Subscription(name, queue, critical)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        sub._closed = True
        if sub in self._subs:
            self._subs.remove(sub)

    def publish(self, event: Event) -> None:
        """Thread-safe: schedule delivery on the bus's loop (or deliver now when on it)."""
        self.publish_many([event])

    def publish_many(self, events: list[Event]) -> None:
        """Thread-safe: ``publish`` for several events, with one wake-up of the loop."""
        loop = self._loop
        if loop is None or not events:
            return  # nobody listens yet (e.g. tools running without an event loop)
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            for event in events:
                self._fanout(event)
            return
        self._inbox.extend(events)
        if not self._drain_scheduled:
            self._drain_scheduled = True
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        # Clear the flag first: an event appended after this point schedules a new drain.
        self._drain_scheduled = False
        inbox = self._inbox
        while inbox:
            self._fanout(inbox.popleft())

    def _fanout(self, event: Event) -> None:
        self.published += 1
        for sub in self._subs:
            if sub.critical:
                sub.queue.put_nowait(event)
                continue
            if sub.queue.full():
                try:
                    sub.queue.get_nowait()
                    sub.dropped += 1
                except asyncio.QueueEmpty:
                    pass
            sub.queue.put_nowait(event)
