"""Live events for one viewer: a private, bounded, non-critical bus subscription.

A viewer that falls behind loses its oldest events (the bus drops them) and is told how many
it missed; it never slows the bus or the rules engine.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from gateway.api.filters import EventFilter
from gateway.api.schemas import EventPublic
from gateway.bus import EventBus

VIEWER_QUEUE = 1000  # events buffered per viewer before the oldest are dropped
_ids = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Subscribed:
    """First item: the subscription exists, events published from now on will arrive."""

    name: str


@dataclass(frozen=True, slots=True)
class Missed:
    """Events dropped for this viewer since the previous notice."""

    count: int


LiveItem = Subscribed | EventPublic | Missed


async def live_events(
    bus: EventBus, flt: EventFilter, channel: str
) -> AsyncGenerator[LiveItem, None]:
    """``Subscribed``, then matching events until closed; always unsubscribes."""
    subscription = bus.subscribe(
        f"api-{channel}-{next(_ids)}", critical=False, maxsize=VIEWER_QUEUE, viewer=True
    )
    reported = 0
    try:
        yield Subscribed(subscription.name)
        while True:
            event = await subscription.get()
            if subscription.dropped != reported:
                yield Missed(subscription.dropped - reported)
                reported = subscription.dropped
            if flt.matches(event):
                yield EventPublic.from_event(event)
    finally:
        bus.unsubscribe(subscription)
