"""Live push to the web console: an in-process hub that SSE/WebSocket viewers subscribe to.

A viewer that falls behind loses its oldest items (bounded queue) and never slows senders.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from gateway.notify.base import Message, SendResult

VIEWER_QUEUE = 500


@dataclass
class _Viewer:
    recipients: frozenset[str]  # empty: everything
    queue: asyncio.Queue[dict[str, Any]] = field(
        default_factory=lambda: asyncio.Queue(VIEWER_QUEUE)
    )
    dropped: int = 0


class NotificationHub:
    """Broadcast of console notifications and incident updates to live viewers."""

    def __init__(self) -> None:
        self._viewers: list[_Viewer] = []
        self.published = 0

    def publish(self, item: dict[str, Any], recipient: str | None = None) -> int:
        """Deliver to every viewer watching ``recipient`` (or all); returns how many."""
        self.published += 1
        n = 0
        for v in self._viewers:
            if v.recipients and recipient not in v.recipients:
                continue
            if v.queue.full():
                v.queue.get_nowait()
                v.dropped += 1
            v.queue.put_nowait(item)
            n += 1
        return n

    async def watch(
        self, recipients: frozenset[str] = frozenset()
    ) -> AsyncIterator[dict[str, Any]]:
        viewer = _Viewer(recipients)
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
        self.hub.publish(
            {"type": "notification", "recipient": message.recipient, **message.payload},
            message.recipient,
        )
        return SendResult.sent()
