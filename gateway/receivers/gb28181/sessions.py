"""Registered GB/T 28181 devices: where they are, until when, whether they are alive, and the
channels their catalog listed. Online/offline events come from here.

A device is online from a successful REGISTER until it unregisters (Expires: 0), its
registration expires, or no Keepalive arrived for ``keepalive_timeout_s``; a Keepalive after
such a silence makes it online again.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from gateway.config.sites import SiteRegistry
from gateway.events import ATTRIBUTE_MODELS, Event, EventType
from gateway.receivers.gb28181.manscdp import CatalogItem
from gateway.receivers.gb28181.sip import Peer

SOURCE = "gb28181"
_serial = itertools.count(1)


@dataclass
class Session:
    device_id: str
    peer: Peer
    expires_at: float  # monotonic seconds
    last_seen: float  # monotonic seconds
    online: bool = False
    channels: dict[str, CatalogItem] = field(default_factory=dict)
    cseq: int = 1

    def next_cseq(self) -> int:
        self.cseq += 1
        return self.cseq


class Sessions:
    def __init__(
        self,
        registry: SiteRegistry,
        *,
        keepalive_timeout_s: float,
        clock: Callable[[], datetime],
        monotonic: Callable[[], float],
    ) -> None:
        self.registry = registry
        self.keepalive_timeout_s = keepalive_timeout_s
        self.clock = clock
        self.monotonic = monotonic
        self.by_device: dict[str, Session] = {}

    def get(self, device_id: str) -> Session | None:
        return self.by_device.get(device_id)

    def register(self, device_id: str, peer: Peer, expires_s: int) -> list[Event]:
        """A successful REGISTER: returns an ``online`` event when it was not online."""
        now = self.monotonic()
        session = self.by_device.get(device_id)
        if session is None:
            session = self.by_device[device_id] = Session(device_id, peer, now + expires_s, now)
        session.peer, session.expires_at, session.last_seen = peer, now + expires_s, now
        if session.online:
            return []
        session.online = True
        return [self.status(device_id, EventType.ONLINE, "registered")]

    def unregister(self, device_id: str, why: str) -> list[Event]:
        session = self.by_device.pop(device_id, None)
        if session is None or not session.online:
            return []
        return [self.status(device_id, EventType.OFFLINE, why)]

    def keepalive(self, session: Session, peer: Peer) -> list[Event]:
        session.last_seen = self.monotonic()
        session.peer = peer
        events = [self.status(session.device_id, EventType.HEARTBEAT, "keepalive")]
        if not session.online:
            session.online = True
            events.insert(0, self.status(session.device_id, EventType.ONLINE, "keepalive"))
        return events

    def due(self) -> list[Event]:
        """``offline`` events for expired registrations and silent devices."""
        now = self.monotonic()
        out: list[Event] = []
        for device_id, session in list(self.by_device.items()):
            if now >= session.expires_at:
                out += self.unregister(device_id, "registration expired")
            elif session.online and now - session.last_seen > self.keepalive_timeout_s:
                session.online = False
                out.append(self.status(device_id, EventType.OFFLINE, "keepalive timeout"))
        return out

    def status(self, device_id: str, type_: EventType, why: str, **extra: str) -> Event:
        found = self.registry.device(device_id)
        if found is None:
            raise KeyError(device_id)
        site, device = found
        now = self.clock()
        model = ATTRIBUTE_MODELS[device.kind]
        return Event(
            event_id=f"{SOURCE}:{device_id}:{type_.value}:{now.isoformat()}:{next(_serial)}",
            occurred_at=now,
            received_at=now,
            site=site.id,
            device_id=device_id,
            kind=device.kind,
            type=type_,
            attributes=model.model_validate({"extra": {"reason": why, **extra}}),
            source=SOURCE,
        )
