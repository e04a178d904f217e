"""Turn one MQTT message into events or a quarantine record. Pure CPU, no I/O.

Runs on the MQTT receive thread; storage and acknowledgement happen in the batch writer.
"""

from __future__ import annotations

import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from device_adapters.base import Adapter, DeviceInfo, MappingError, Message, NoMatch
from device_adapters.profiles.engine import UnknownDevice
from gateway.config.settings import IngestConfig
from gateway.config.sites import SiteRegistry
from gateway.events import Event, utcnow
from gateway.ids import first_bad_device_id
from gateway.ingest.decode import Rejected, decode_payload
from gateway.ingest.reasons import Reason

log = logging.getLogger(__name__)

RECENT_IDS = 100_000  # event ids remembered to drop redeliveries before they reach the bus
LOG_ONCE_KEYS = 10_000  # (device, reason) pairs already logged; reset when full
TOPIC_CACHE = 50_000


@dataclass(frozen=True, slots=True)
class QuarantineRecord:
    received_at: datetime
    topic: str
    reason: Reason
    detail: str
    device_id: str | None
    raw: bytes  # bounded by ingest.quarantine_raw_bytes
    size: int  # original size in bytes


@dataclass(slots=True)
class Outcome:
    events: list[Event] = field(default_factory=list)
    quarantined: QuarantineRecord | None = None
    duplicates: int = 0
    duplicate_events: list[Event] = field(default_factory=list)  # redeliveries, not on the bus


@dataclass
class IngestStats:
    messages: int = 0
    events: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    last_message_at: datetime | None = None


class Normaliser:
    """Message → events, using the first adapter that takes the topic."""

    def __init__(
        self,
        adapters: Sequence[Adapter],
        registry: SiteRegistry,
        config: IngestConfig,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        # adapters and the topic → adapter cache, swapped together (replace_adapters)
        self._routing: tuple[list[Adapter], dict[str, Adapter | None]] = (list(adapters), {})
        self.registry = registry
        self.config = config
        self.clock = clock
        self.stats = IngestStats()
        self._recent: OrderedDict[str, None] = OrderedDict()
        self._logged: set[tuple[str, str]] = set()
        self._device_info: dict[str, DeviceInfo | None] = {}

    def subscriptions(self) -> list[str]:
        subs: list[str] = []
        for adapter in self.adapters:
            subs.extend(s for s in adapter.subscriptions() if s not in subs)
        return subs

    def lookup(self, device_id: str) -> DeviceInfo | None:
        try:
            return self._device_info[device_id]
        except KeyError:
            pass
        found = self.registry.device(device_id)
        info = None
        if found is not None:
            site, device = found
            labels = {
                k: v
                for k, v in (
                    ("place", device.place),
                    ("zone", device.zone),
                    ("household", device.household),
                    ("camera", device.camera),
                )
                if v
            }
            info = DeviceInfo(site.id, device.kind, labels)
        if len(self._device_info) < TOPIC_CACHE:
            self._device_info[device_id] = info
        return info

    @property
    def adapters(self) -> list[Adapter]:
        return self._routing[0]

    def replace_adapters(self, adapters: Sequence[Adapter]) -> None:
        """Use these adapters from the next message on (profiles reloaded). The receive thread
        reads the adapters and their topic cache without a lock, so both are swapped as one
        reference: a look-up never caches an old adapter in the new cache."""
        self._routing = (list(adapters), {})

    def forget_device(self, device_id: str) -> None:
        """Drop the cached look-up of one device: the registry has just added or changed it."""
        self._device_info.pop(device_id, None)

    def _adapter_for(self, topic: str) -> Adapter | None:
        adapters, cache = self._routing
        try:
            return cache[topic]
        except KeyError:
            pass
        chosen = next((a for a in adapters if a.accepts(topic)), None)
        if len(cache) >= TOPIC_CACHE:
            cache.clear()  # topics are per device: bounded in practice
        cache[topic] = chosen
        return chosen

    def process(self, topic: str, raw: bytes) -> Outcome:
        received_at = self.clock()
        stats = self.stats
        stats.messages += 1
        stats.last_message_at = received_at
        adapter = self._adapter_for(topic)
        if adapter is None:
            return self.reject(
                topic, raw, received_at, Reason.NO_PROFILE, "no profile takes this topic", None
            )
        try:
            payload = decode_payload(
                raw,
                adapter.payload_format(topic),
                max_bytes=self.config.max_payload_bytes,
                max_depth=self.config.max_json_depth,
            )
            events = adapter.normalise(Message(topic, payload, raw, received_at), self.lookup)
        except Rejected as exc:
            return self.reject(topic, raw, received_at, exc.reason, exc.detail, None)
        except UnknownDevice as exc:
            if (bad := first_bad_device_id([exc.device_id])) is not None:
                return self.reject(topic, raw, received_at, Reason.INVALID_DEVICE_ID, bad, None)
            return self.reject(
                topic, raw, received_at, Reason.UNKNOWN_DEVICE, exc.reason, exc.device_id
            )
        except NoMatch as exc:
            return self.reject(topic, raw, received_at, Reason.NO_MATCH, exc.reason, None)
        except MappingError as exc:
            return self.reject(topic, raw, received_at, Reason.INVALID_EVENT, str(exc), None)
        except Exception as exc:  # a plug-in adapter's bug must not stop the stream
            log.exception("adapter %s failed on topic %s", getattr(adapter, "name", adapter), topic)
            return self.reject(topic, raw, received_at, Reason.ADAPTER_ERROR, repr(exc)[:500], None)

        if (bad := first_bad_device_id(e.device_id for e in events)) is not None:
            return self.reject(topic, raw, received_at, Reason.INVALID_DEVICE_ID, bad, None)
        if not self.config.accept_unknown_devices:
            for event in events:
                if self.lookup(event.device_id) is None:
                    return self.reject(
                        topic, raw, received_at, Reason.UNKNOWN_DEVICE,
                        f"device {event.device_id!r} is not in the site registry", event.device_id,
                    )  # fmt: skip
        outcome = Outcome()
        recent = self._recent
        for event in events:
            if event.event_id in recent:
                outcome.duplicates += 1
                outcome.duplicate_events.append(event)
                continue
            recent[event.event_id] = None
            if len(recent) > RECENT_IDS:
                recent.popitem(last=False)
            outcome.events.append(event)
        stats.events += len(outcome.events)
        stats.duplicates += outcome.duplicates
        return outcome

    def reject(
        self,
        topic: str,
        raw: bytes,
        received_at: datetime,
        reason: Reason,
        detail: str,
        device_id: str | None,
    ) -> Outcome:
        self.stats.rejected[reason.value] += 1
        key = (device_id or topic, reason.value)
        if key not in self._logged:
            if len(self._logged) >= LOG_ONCE_KEYS:
                self._logged.clear()
            self._logged.add(key)
            # Detail may quote payload fragments; never the raw bytes (personal data).
            log.warning("quarantined %s from %s: %s (logged once per source and reason)",
                        reason.value, device_id or topic, detail[:300])  # fmt: skip
        limit = self.config.quarantine_raw_bytes
        record = QuarantineRecord(
            received_at, topic[:512], reason, detail[:1000], device_id, raw[:limit], len(raw)
        )
        return Outcome(quarantined=record)
