"""NULL supervision: a panel that reports nothing for longer than its ``null_interval_s``
(plus ``null_grace_s``) is offline; the next message it sends makes it online again.

Any message counts as a sign of life, as DC-09 has it (the panel restarts its interval timer
when it sends anything). Offline and online are events like any other: stored, on the bus,
and the device list shows them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from gateway.config.sites import DeviceConfig, SiteRegistry
from gateway.events import ATTRIBUTE_MODELS, Event, EventType
from gateway.receivers.sia.config import SiaReceiverConfig
from gateway.receivers.sink import ReceiverSink

log = logging.getLogger(__name__)


class Supervision:
    def __init__(
        self,
        config: SiaReceiverConfig,
        registry: SiteRegistry,
        sink: ReceiverSink,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.registry = registry
        self.sink = sink
        self.clock = clock
        self.started = clock()
        self._last: dict[str, datetime] = {}
        self.offline: set[str] = set()

    def heard(self, device: DeviceConfig, now: datetime) -> list[Event]:
        """The panel sent something: an ``online`` event first if it was offline."""
        self._last[device.id] = now
        if device.id not in self.offline:
            return []
        self.offline.discard(device.id)
        log.info("SIA panel %s is online again", device.id)
        return [self._status(device, EventType.ONLINE, now, "a message after silence")]

    def due(self, now: datetime) -> list[Event]:
        """``offline`` events of supervised panels whose interval has passed unheard."""
        out: list[Event] = []
        grace = self.config.null_grace_s
        for site in self.registry.sites.values():
            for device in site.devices:
                sia = device.sia
                if sia is None or sia.null_interval_s is None or device.id in self.offline:
                    continue
                last = self._last.get(device.id, self.started)
                if now - last > timedelta(seconds=sia.null_interval_s + grace):
                    self.offline.add(device.id)
                    log.warning(
                        "SIA panel %s missed its NULL (every %d s): offline",
                        device.id,
                        sia.null_interval_s,
                    )
                    out.append(
                        self._status(
                            device,
                            EventType.OFFLINE,
                            now,
                            f"no message for {sia.null_interval_s + grace} s",
                        )
                    )
        return out

    async def run(self, tick_s: float = 1.0) -> None:
        """Check every ``tick_s`` until cancelled."""
        while True:
            await asyncio.sleep(tick_s)
            events = self.due(self.clock())
            if events:
                await self.sink.store(events, timeout_s=self.config.ack_timeout_s)

    def _status(self, device: DeviceConfig, type_: EventType, now: datetime, why: str) -> Event:
        assert device.sia is not None
        found = self.registry.device(device.id)
        site = found[0].id if found is not None else ""
        model = ATTRIBUTE_MODELS[device.kind]
        return Event(
            event_id=f"sia:{device.sia.account}:{type_.value}:{now.isoformat()}",
            occurred_at=now,
            received_at=now,
            site=site,
            device_id=device.id,
            kind=device.kind,
            type=type_,
            attributes=model.model_validate(
                {"extra": {"account": device.sia.account, "reason": why}}
            ),
            source="sia-dc09",
        )
