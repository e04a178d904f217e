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
    viewer: bool = False  # a live viewer: also gets events other workers handled
    _closed: bool = field(default=False, repr=False)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while not self._closed:
            yield await self.queue.get()

    async def get(self) -> Event:
        return await self.queue.get()


@dataclass
class BatchSubscription:
    """Every event, in order, as the lists they arrived in: one queue item per hand-off
    instead of one per event (the rules take thousands a second). Never drops. A list is
    shared by every batch subscriber: read it, never change it."""

    name: str
    queue: asyncio.Queue[list[Event]]
    pending: int = 0  # events queued, not yet taken

    async def get(self) -> list[Event]:
        batch = await self.queue.get()
        self.pending -= len(batch)
        return batch


class EventBus:
    """Fan-out to subscribers. Critical subscribers (rules) get every event; others (live
    viewers) have bounded queues and lose their oldest events when they fall behind."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop
        self._subs: list[Subscription] = []
        self._batch_subs: list[BatchSubscription] = []
        self.published = 0
        # Events from other threads wait here; one loop wake-up drains them all, so a burst
        # costs one self-pipe write instead of one per event.
        self._inbox: deque[Event] = deque()
        self._drain_scheduled = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def subscribe(
        self, name: str, *, critical: bool = False, maxsize: int = 1000, viewer: bool = False
    ) -> Subscription:
        """``viewer``: a live viewer (never critical), which ``publish_to_viewers`` reaches."""
        queue: asyncio.Queue[Event] = asyncio.Queue(0 if critical else maxsize)
        sub = Subscription(name, queue, critical, viewer=viewer and not critical)
        self._subs.append(sub)
        return sub

    def subscribe_batches(self, name: str) -> BatchSubscription:
        """A critical subscriber taking events in batches (``BatchSubscription``)."""
        sub = BatchSubscription(name, asyncio.Queue())
        self._batch_subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription | BatchSubscription) -> None:
        if isinstance(sub, BatchSubscription):
            if sub in self._batch_subs:
                self._batch_subs.remove(sub)
            return
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
            self._deliver(list(events))
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
        # popleft, not a copy and clear: the receive thread may be appending meanwhile
        events = [inbox.popleft() for _ in range(len(inbox))]
        if events:
            self._deliver(events)

    def _deliver(self, events: list[Event]) -> None:
        for batch_sub in self._batch_subs:
            batch_sub.pending += len(events)
            batch_sub.queue.put_nowait(events)
        if not self._subs:
            self.published += len(events)
            return
        for event in events:
            self._fanout(event)

    @property
    def has_viewers(self) -> bool:
        return any(sub.viewer for sub in self._subs)

    def publish_to_viewers(self, events: list[Event]) -> None:
        """Events another worker handled (``gateway.cluster_push``): to live viewers only,
        never to the rules, storage or other processing here. Call on the bus's loop."""
        for event in events:
            for sub in self._subs:
                if sub.viewer:
                    self._offer(sub, event)

    def _fanout(self, event: Event) -> None:
        self.published += 1
        for sub in self._subs:
            if sub.critical:
                sub.queue.put_nowait(event)
                continue
            self._offer(sub, event)

    @staticmethod
    def _offer(sub: Subscription, event: Event) -> None:
        """Queue for a non-critical subscriber, dropping its oldest when full."""
        if sub.queue.full():
            try:
                sub.queue.get_nowait()
                sub.dropped += 1
            except asyncio.QueueEmpty:
                pass
        sub.queue.put_nowait(event)
