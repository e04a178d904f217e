"""A ReceiverSink stand-in: records what a receiver stores and quarantines."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway.events import Event


class FakeSink:
    def __init__(self, *, stored: bool = True, delay_s: float = 0.0) -> None:
        self.events: list[Event] = []
        self.quarantined: list[dict[str, Any]] = []
        self.panics: list[dict[str, Any]] = []
        self.stored = stored  # what store() reports
        self.delay_s = delay_s
        self.raise_panic = False  # what unregistered_panic() reports

    async def store(self, events: list[Event], *, timeout_s: float) -> bool:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.stored:
            self.events += events
        return self.stored

    def quarantine(self, **record: Any) -> None:
        self.quarantined.append(record)

    async def unregistered_panic(self, **details: Any) -> bool:
        self.panics.append(details)
        return self.raise_panic

    def reasons(self) -> list[str]:
        return [str(q["reason"]) for q in self.quarantined]
