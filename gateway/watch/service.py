"""What the watch routes need from the running gateway, in one object (``app.state.wire``):
its adapters as they run now, the device look-up, the ingest limits, and the topic watches."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from device_adapters.base import Adapter, DeviceLookup
from gateway.config.settings import IngestConfig
from gateway.events import utcnow
from gateway.watch.topics import TopicWatches
from gateway.watch.trial import Verdict, adapter_name, trial, verdict_for

if TYPE_CHECKING:
    from gateway.runtime import Gateway


@dataclass
class Wire:
    adapters: Callable[[], Sequence[Adapter]]  # read at each call: profiles reload
    lookup: DeviceLookup
    ingest: IngestConfig
    watches: TopicWatches
    clock: Callable[[], datetime] = utcnow

    @classmethod
    def of(cls, gateway: Gateway) -> Wire:
        normaliser = gateway.normaliser

        def judge(topic: str, raw: bytes, at: datetime) -> Verdict:
            return verdict_for(normaliser.adapters, topic, raw, lookup=normaliser.lookup,
                               config=gateway.config.ingest, received_at=at)  # fmt: skip

        return cls(
            adapters=lambda: normaliser.adapters,
            lookup=normaliser.lookup,
            ingest=gateway.config.ingest,
            watches=TopicWatches(gateway.config.mqtt, judge),
        )

    def profiles(self) -> list[dict[str, object]]:
        return [
            {"id": adapter_name(a), "subscriptions": list(a.subscriptions())}
            for a in self.adapters()
        ]

    def judge(self, topic: str, raw: bytes) -> Verdict:
        """What the gateway would make of the message now (the profile taking its topic)."""
        return verdict_for(self.adapters(), topic, raw, lookup=self.lookup,
                           config=self.ingest, received_at=self.clock())  # fmt: skip

    def trial_with(self, profile: str, topic: str, raw: bytes) -> Verdict | None:
        """What ``profile`` (a running one) would make of the message, whether or not it
        takes the topic; None when no running profile has that id."""
        adapter = next((a for a in self.adapters() if adapter_name(a) == profile), None)
        if adapter is None:
            return None
        return trial(adapter, topic, raw, lookup=self.lookup, config=self.ingest,
                     received_at=self.clock())  # fmt: skip
