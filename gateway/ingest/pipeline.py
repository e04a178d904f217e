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
from gateway.events import Event, EventType, utcnow
from gateway.ids import first_bad_device_id
from gateway.ingest.alarm_signal import UnregisteredPanic, panic_note
from gateway.ingest.decode import Rejected, decode_payload
from gateway.ingest.panic_sniff import looks_like_panic
from gateway.ingest.quarantine import QuarantineSampler
from gateway.ingest.reasons import Reason
from gateway.ingest.unregistered import UnregisteredPanics

log = logging.getLogger(__name__)

RECENT_IDS = 100_000  # event ids remembered to drop redeliveries before they reach the bus
TOPIC_CACHE = 50_000
_UNSEEN = object()
_REASON_NAMES = {r: r.value for r in Reason}
# Messages no profile could read: those that look like a panic are raised all the same.
UNREADABLE_REASONS = frozenset(
    {
        Reason.OVERSIZE,
        Reason.INVALID_UTF8,
        Reason.MALFORMED_JSON,
        Reason.DUPLICATE_KEY,
        Reason.TOO_DEEP,
        Reason.INVALID_TEXT,
        Reason.NO_PROFILE,
        Reason.NO_MATCH,
        Reason.INVALID_EVENT,
        Reason.ADAPTER_ERROR,
    }
)


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
    quarantined: QuarantineRecord | None = None  # None also when sampled out (counted only)
    duplicates: int = 0
    duplicate_events: list[Event] = field(default_factory=list)  # redeliveries, not on the bus
    # Panics of an unregistered device: raised as incidents (gateway.ingest.unregistered)
    alarms: list[UnregisteredPanic] = field(default_factory=list)
    counted_only: bool = False  # quarantined past the row rates: nothing to store


@dataclass
class IngestStats:
    messages: int = 0
    events: int = 0
    duplicates: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    last_message_at: datetime | None = None


FirstLevelIndex = tuple[list[Adapter], dict[str, list[Adapter]], list[Adapter]]


def first_level_index(adapters: list[Adapter]) -> FirstLevelIndex:
    """(adapters, the adapters that may take a topic under each first level, the adapters
    for any other first level), in the adapters' order. A profile says which first levels
    its topics use (``ProfileAdapter.first_levels``); an adapter that does not say is tried
    for every topic. A storm of new topics then costs no regex of unrelated profiles."""
    firsts: list[frozenset[str] | None] = [getattr(a, "first_levels", None) for a in adapters]
    pairs = list(zip(adapters, firsts, strict=True))
    levels = {level for f in firsts if f is not None for level in f}
    by_level = {level: [a for a, f in pairs if f is None or level in f] for level in sorted(levels)}
    return adapters, by_level, [a for a, f in pairs if f is None]


_Routing = tuple[list[Adapter], FirstLevelIndex, dict[str, Adapter | None]]


def _routing(adapters: Sequence[Adapter]) -> _Routing:
    listed = list(adapters)
    return listed, first_level_index(listed), {}


class Normaliser:
    """Message → events, using the first adapter that takes the topic.

    Quarantined messages are counted and sampled by ``quarantine`` (rows past its rates are
    only counted). With ``unregistered``, a panic from a device missing from the registry is
    planned as alarms on the outcome (the caller raises them); without it, it is only
    quarantined.
    """

    def __init__(
        self,
        adapters: Sequence[Adapter],
        registry: SiteRegistry,
        config: IngestConfig,
        clock: Callable[[], datetime] = utcnow,
        *,
        unregistered: UnregisteredPanics | None = None,
    ) -> None:
        # adapters, their first-level index and the topic → adapter cache, swapped together
        # as one reference (replace_adapters)
        self._routing: _Routing = _routing(adapters)
        self.registry = registry
        self.config = config
        self.clock = clock
        self.stats = IngestStats()
        self.quarantine = QuarantineSampler(
            per_source=config.quarantine_per_source_per_minute,
            per_reason=config.quarantine_per_reason_per_minute,
            total=config.quarantine_per_minute,
        )
        self.unregistered = unregistered
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
        self._routing = _routing(adapters)

    def forget_device(self, device_id: str) -> None:
        """Drop the cached look-up of one device: the registry has just added or changed it."""
        self._device_info.pop(device_id, None)

    def _adapter_for(self, topic: str) -> Adapter | None:
        _, (_, by_level, others), cache = self._routing
        cached = cache.get(topic, _UNSEEN)
        if cached is not _UNSEEN:
            return cached  # type: ignore[return-value]
        candidates = by_level.get(topic.partition("/")[0], others)
        chosen = next((a for a in candidates if a.accepts(topic)), None)
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
            is_panic = EventType.PANIC.value in exc.event_types
            if not is_panic and (bad := first_bad_device_id([exc.device_id])) is not None:
                # a panic goes on as an unregistered device's, whatever its id
                return self.reject(topic, raw, received_at, Reason.INVALID_DEVICE_ID, bad, None)
            return self._unknown_device(
                topic, raw, received_at, exc.reason, exc.device_id,
                panic=is_panic, site=exc.site, source=getattr(adapter, "name", "adapter"),
            )  # fmt: skip
        except NoMatch as exc:
            return self.reject(topic, raw, received_at, Reason.NO_MATCH, exc.reason, None)
        except MappingError as exc:
            return self.reject(topic, raw, received_at, Reason.INVALID_EVENT, str(exc), None)
        except Exception as exc:  # a plug-in adapter's bug must not stop the stream
            log.exception("adapter %s failed on topic %s", getattr(adapter, "name", adapter), topic)
            return self.reject(topic, raw, received_at, Reason.ADAPTER_ERROR, repr(exc)[:500], None)

        if (bad := first_bad_device_id(e.device_id for e in events)) is not None:
            # No registered device has such an id: a panic among them is an unregistered
            # device's (raised, never dropped), anything else is refused for its id.
            panic = next((e for e in events if e.type is EventType.PANIC), None)
            if panic is None:
                return self.reject(topic, raw, received_at, Reason.INVALID_DEVICE_ID, bad, None)
            return self._unknown_device(
                topic, raw, received_at, f"device id {bad!r} breaks the id grammar",
                panic.device_id, panic=True, site=panic.site, source=panic.source,
            )  # fmt: skip
        if not self.config.accept_unknown_devices:
            for event in events:
                if self.lookup(event.device_id) is None:
                    panic = next((e for e in events if e.type is EventType.PANIC), None)
                    return self._unknown_device(
                        topic, raw, received_at,
                        f"device {event.device_id!r} is not in the site registry",
                        event.device_id, panic=panic is not None,
                        site=panic.site if panic is not None else None, source=event.source,
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

    def _unknown_device(
        self,
        topic: str,
        raw: bytes,
        received_at: datetime,
        detail: str,
        device_id: str,
        *,
        panic: bool,
        site: str | None,
        source: str,
    ) -> Outcome:
        """Quarantined as ``unknown_device``; a panic is also planned as alarms (incidents)."""
        if not panic or self.unregistered is None:
            return self.reject(topic, raw, received_at, Reason.UNKNOWN_DEVICE, detail, device_id)
        alarms = self.unregistered.plan(
            device_id=device_id,
            source=source,
            origin=topic,
            raw=raw,
            detail=detail,
            received_at=received_at,
            site=site,
        )
        return self.reject(
            topic,
            raw,
            received_at,
            Reason.UNKNOWN_DEVICE,
            f"{detail} — {panic_note(alarms)}",
            device_id,
            alarms=alarms,
        )

    def reject(
        self,
        topic: str,
        raw: bytes,
        received_at: datetime,
        reason: Reason,
        detail: str,
        device_id: str | None,
        *,
        alarms: list[UnregisteredPanic] | None = None,
    ) -> Outcome:
        """Count the message; keep its quarantine record unless the sampling rates say no
        (a raised panic's record is always kept)."""
        name = _REASON_NAMES[reason]  # not reason.value: the enum's descriptor costs more
        self.stats.rejected[name] += 1
        if (
            alarms is None
            and reason in UNREADABLE_REASONS
            and self.unregistered is not None
            and looks_like_panic(raw)
        ):
            # Unreadable, yet it looks like a panic: the resident is heard (panic_sniff).
            alarms = self.unregistered.plan_unreadable(
                topic=topic, raw=raw, detail=f"{reason.value}: {detail}", received_at=received_at
            )
            detail = f"{detail} — looks like a panic: {panic_note(alarms)}"
        source = device_id or topic
        if alarms:
            self.quarantine.keep_always(name, source, received_at, detail)
        elif not self.quarantine.admit(name, source, received_at, detail):
            return Outcome(counted_only=True)
        limit = self.config.quarantine_raw_bytes
        record = QuarantineRecord(
            received_at, topic[:512], reason, detail[:1000], device_id, raw[:limit], len(raw)
        )
        return Outcome(quarantined=record, alarms=alarms or [])
