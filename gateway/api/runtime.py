"""What the API needs from the running gateway.

The gateway runtime implements this; tests use a small stub. Plain attributes satisfy the
read-only properties.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy import Engine

from gateway.bus import EventBus
from gateway.health import HealthReport


class Runtime(Protocol):
    @property
    def engine(self) -> Engine:
        """Engine for reads; the API never writes."""
        ...

    @property
    def bus(self) -> EventBus:
        """The event bus, bound to the event loop that serves the API."""
        ...

    def health(self) -> HealthReport:
        """A cheap, non-blocking snapshot (called on the event loop). ``database`` and the
        final ``status`` are filled in by the API."""
        ...
