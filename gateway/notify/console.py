"""Live push to the web console: an in-process hub that SSE/WebSocket viewers subscribe to.

A viewer that falls behind loses its oldest items (bounded queue) and never slows senders.
Every item is published with the place of its incident (cell, site, reporter) and, for a
notification, its recipient; each viewer has an ``admits(place, recipient)`` check (the
caller's scope, ``gateway.auth.guards.LivePush``), so nobody receives items about incidents
they may not see. The place travels beside the item, never inside it.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from gateway.notify.base import IncidentPlace, Message, SendResult, notification_body

VIEWER_QUEUE = 500
PLACES_KEPT = 10_000  # incidents whose place the hub remembers (for items published without)

Admits = Callable[[IncidentPlace | None, str | None], bool]
"""``admits(place of the item's incident, recipient of the item)`` → deliver to this viewer?"""


def admit_all(place: IncidentPlace | None, recipient: str | None) -> bool:
    return True


@dataclass
class _Viewer:
    admits: Admits
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(VIEWER_QUEUE)
    )
    dropped: int = 0


class NotificationHub:
    """Broadcast of console notifications and incident updates to live viewers."""

    def __init__(self) -> None:
        self._viewers: list[_Viewer] = []
        self._places: OrderedDict[int, IncidentPlace] = OrderedDict()
        self.published = 0
        # Also told of every item published here (``gateway.cluster_push`` forwards them to
        # the other workers' hubs, which ``deliver`` them without forwarding again).
        self.relay: Callable[[dict[str, Any], str | None, IncidentPlace | None], None] | None = None

    def _place_of(self, item: dict[str, Any], place: IncidentPlace | None) -> IncidentPlace | None:
        """The place given (remembered for the incident), else the one last given for it."""
        incident_id = item.get("incident_id")
        if not isinstance(incident_id, int):
            return place
        if place is None:
            return self._places.get(incident_id)
        self._places[incident_id] = place
        self._places.move_to_end(incident_id)
        while len(self._places) > PLACES_KEPT:
            self._places.popitem(last=False)
        return place

    def publish(
        self,
        item: dict[str, Any],
        recipient: str | None = None,
        place: IncidentPlace | None = None,
    ) -> int:
        """Deliver to every viewer that admits it; returns how many. ``place``: where the
        item's incident is; when not given, the last place published for that incident (if
        none is known, only viewers that admit an unknown place get it)."""
        n = self.deliver(item, recipient, place)
        if self.relay is not None:
            self.relay(item, recipient, place)
        return n

    def deliver(
        self,
        item: dict[str, Any],
        recipient: str | None = None,
        place: IncidentPlace | None = None,
    ) -> int:
        """``publish`` to this process's viewers only (an item from another worker)."""
        self.published += 1
        place = self._place_of(item, place)
        n = 0
        for v in self._viewers:
            if not v.admits(place, recipient):
                continue
            if v.queue.full():
                v.queue.get_nowait()
                v.dropped += 1
            v.queue.put_nowait(item)
            n += 1
        return n

    async def watch(self, admits: Admits = admit_all) -> AsyncIterator[dict[str, Any]]:
        viewer = _Viewer(admits)
        self._viewers.append(viewer)
        try:
            yield {"type": "subscribed"}
            while True:
                yield await viewer.queue.get()
        finally:
            self._viewers.remove(viewer)

    @property
    def viewers(self) -> int:
        return len(self._viewers)


class ConsoleNotifier:
    def __init__(self, hub: NotificationHub) -> None:
        self.hub = hub

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, message: Message) -> SendResult:
        self.hub.publish(console_item(message), message.recipient, message.place)
        return SendResult.sent()


def console_item(message: Message) -> dict[str, Any]:
    """The pushed item: the body every channel sends (``notification_body``) with
    ``type: "notification"``, which the payload cannot overwrite either."""
    return {**notification_body(message), "type": "notification"}
