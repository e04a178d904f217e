"""Panics from devices missing from the registry: raised as P1 incidents, never only kept in
quarantine.

A press from a button nobody registered (a new button, a typo in its id) still means a
resident asked for help. Its message is quarantined as ``unknown_device`` as before, and in
addition each panic becomes a P1 incident marked 未登记设备 / unregistered device (label
``device.registered: "false"``, which ``config/routing.yaml`` routes to the police desk and
the command centre), carrying the raw message:

- for the site the message names (a topic's ``lianfang/<site>/…``), when it is one of this
  gateway's sites; otherwise for every site of the gateway, one incident each, so that each
  site's police desk hears of it;
- the same message gives the same ids, so a redelivery is recognised, and the presses of one
  device are grouped into its open incident (``group_key`` = device id);
- past ``per_site_per_minute`` panics of unregistered devices in one site (a flood of invented
  ids), further presses are coalesced into one flood incident for the site, at most one signal
  per ``FLOOD_SIGNAL_EVERY_S``, counting the presses in between: the police desk is told,
  and is not buried.

Entry points: the MQTT path plans alarms in the normaliser (``plan``) and raises them from the
receive thread after holding the message's acknowledgement (``raise_alarms``); any other
receiver (SIA DC-09, GB/T 28181, …) calls ``report`` (``Gateway.report_unregistered_panic``),
which also keeps the quarantine record and returns once the incidents are stored.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from limits import RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from gateway.config.sites import SiteRegistry
from gateway.events import utcnow
from gateway.ingest.alarm_signal import (
    FLOOD_SIGNAL_EVERY_S,
    REGISTERED_LABEL,
    RULE_ID,
    UNREADABLE_LABEL,
    UnregisteredPanic,
    alarm_id,
    panic_note,
    panic_signal,
)
from rules.signal import Signal

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UnregisteredReport:
    """What ``report`` did: the alarms raised (none when held back by the flood limit), and
    whether every one's incident was stored in time."""

    alarm_ids: tuple[str, ...]
    sites: tuple[str, ...]
    stored: bool


@dataclass
class UnregisteredStats:
    panics: int = 0  # messages read as a panic from an unregistered device
    raised: int = 0  # signals handed to the incident service
    coalesced: int = 0  # presses held back by the flood limit (counted in a flood signal)


Emit = Callable[[Signal], Coroutine[Any, Any, None]]


class KeepRecord(Protocol):
    """Stores the quarantine record of a receiver's panic, whatever the sampling rates."""

    def __call__(
        self, *, origin: str, device_id: str, raw: bytes, detail: str, received_at: datetime
    ) -> None: ...


class UnregisteredPanics:
    """Plans, raises and follows the incidents of unregistered devices' panics (module doc)."""

    def __init__(
        self,
        registry: SiteRegistry,
        *,
        per_site_per_minute: int = 30,
        keep_record: KeepRecord | None = None,
    ) -> None:
        self.registry = registry
        self.keep_record = keep_record
        self.stats = UnregisteredStats()
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._rate = RateLimitItemPerMinute(per_site_per_minute)
        self._flood_rate = RateLimitItemPerSecond(1, FLOOD_SIGNAL_EVERY_S)
        self._held: Counter[str] = Counter()  # per site: presses since the last flood signal
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._emit: Emit | None = None
        self._unbound: list[Signal] = []  # raised before bind (kept, emitted at bind)
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}

    # -- planning (any thread) -----------------------------------------------------------

    def plan(
        self,
        *,
        device_id: str,
        source: str,
        origin: str,
        raw: bytes,
        detail: str,
        received_at: datetime,
        site: str | None = None,
        unreadable: bool = False,
    ) -> list[UnregisteredPanic]:
        """The alarms for one panic message: one per site told, minus those the flood limit
        holds back (counted into the site's next flood signal)."""
        named = site is not None and site in self.registry.sites
        sites = [site] if named and site is not None else sorted(self.registry.sites)
        if not sites:  # a gateway without sites: still raised, without a site
            sites = [site or ""]
        alarms: list[UnregisteredPanic] = []
        with self._lock:
            self.stats.panics += 1
            for s in sites:
                coalesced = 0
                if not self._limiter.hit(self._rate, "panic", s):
                    self._held[s] += 1
                    if not self._limiter.hit(self._flood_rate, "flood", s):
                        self.stats.coalesced += 1
                        continue
                    coalesced, self._held[s] = self._held[s], 0
                alarms.append(
                    UnregisteredPanic(
                        alarm_id=alarm_id(source, origin, device_id, raw, s),
                        site=s,
                        site_named=named,
                        device_id=device_id,
                        source=source,
                        origin=origin,
                        raw=raw,
                        detail=detail,
                        received_at=received_at,
                        coalesced=coalesced,
                        unreadable=unreadable,
                    )
                )
        return alarms

    def plan_unreadable(
        self, *, topic: str, raw: bytes, detail: str, received_at: datetime
    ) -> list[UnregisteredPanic]:
        """The alarms for a message no profile could read that looks like a panic
        (``gateway.ingest.panic_sniff``): its site is a topic level naming one of this
        gateway's sites (else every site is told), its device the topic."""
        levels = topic.split("/")
        site = next((level for level in levels if level in self.registry.sites), None)
        return self.plan(
            device_id=topic[:128],
            source="unreadable",
            origin=topic,
            raw=raw,
            detail=detail,
            received_at=received_at,
            site=site,
            unreadable=True,
        )

    # -- raising (any thread) --------------------------------------------------------------

    def bind(self, loop: asyncio.AbstractEventLoop, emit: Emit) -> None:
        """Where signals go: the incident service's ``emit``, on ``loop``."""
        with self._lock:
            self._loop, self._emit = loop, emit
            waiting, self._unbound = self._unbound, []
        if waiting:
            loop.call_soon_threadsafe(self._emit_all, waiting)

    def raise_alarms(self, alarms: Sequence[UnregisteredPanic]) -> None:
        """Hand the alarms' signals to the incident service (returns at once)."""
        if not alarms:
            return
        signals = [panic_signal(a) for a in alarms]
        with self._lock:
            self.stats.raised += len(signals)
            loop = self._loop
            if loop is None:
                log.warning("unregistered panic before the incident service is bound: queued")
                self._unbound.extend(signals)
                return
        loop.call_soon_threadsafe(self._emit_all, signals)

    def _emit_all(self, signals: list[Signal]) -> None:
        assert self._emit is not None
        for signal in signals:
            log.warning(
                "panic from unregistered device %r (site %s): P1 incident raised",
                signal.device_id, signal.site,
            )  # fmt: skip
            task = asyncio.get_running_loop().create_task(self._emit(signal))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def stored(self, signal: Signal) -> None:
        """The incident service stored ``signal`` (on the loop): wake who waits for it."""
        if signal.rule_id != RULE_ID:
            return
        for event in signal.events:
            for future in self._waiters.pop(event.event_id, ()):
                if not future.done():
                    future.set_result(None)

    # -- the entry point for receivers (on the loop) ---------------------------------------

    async def report(
        self,
        *,
        device_id: str,
        protocol: str,
        raw: bytes,
        detail: str = "",
        site: str | None = None,
        origin: str = "",
        received_at: datetime | None = None,
        within_s: float | None = 10.0,
    ) -> UnregisteredReport:
        """A panic from a device missing from the registry, as any receiver reads one.

        Keeps the quarantine record (reason ``unknown_device``), raises a P1 incident per
        site (``site`` when it is one of this gateway's, else every site) and returns once the
        incidents are stored, or after ``within_s`` (``stored`` is then False): a receiver
        that acknowledges on its wire should do so after this returns. Call it on the
        gateway's event loop (from another thread: ``asyncio.run_coroutine_threadsafe``).
        """
        at = received_at or utcnow()
        origin = origin or f"{protocol}:{device_id}"
        alarms = self.plan(
            device_id=device_id,
            source=protocol,
            origin=origin,
            raw=raw,
            detail=detail,
            received_at=at,
            site=site,
        )
        if self.keep_record is not None:
            self.keep_record(
                origin=origin,
                device_id=device_id,
                raw=raw,
                detail=f"{detail[:500]} — {panic_note(alarms)}",
                received_at=at,
            )
        ids = [a.alarm_id for a in alarms]
        futures = self._register(ids)  # before raising: a store may come first
        self.raise_alarms(alarms)
        stored = await self._wait(ids, futures, within_s)
        return UnregisteredReport(tuple(ids), tuple(a.site for a in alarms), stored)

    def _register(self, alarm_ids: Sequence[str]) -> list[asyncio.Future[None]]:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[None]] = []
        for alarm in alarm_ids:
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(alarm, []).append(future)
            futures.append(future)
        return futures

    async def _wait(
        self, alarm_ids: Sequence[str], futures: list[asyncio.Future[None]], within_s: float | None
    ) -> bool:
        try:
            await asyncio.wait_for(asyncio.gather(*futures), within_s)
            return True
        except TimeoutError:
            return False
        finally:
            for alarm, future in zip(alarm_ids, futures, strict=True):
                holders = self._waiters.get(alarm)
                if holders is not None and future in holders:
                    holders.remove(future)
                    if not holders:
                        del self._waiters[alarm]


__all__ = [
    "REGISTERED_LABEL",
    "RULE_ID",
    "UNREADABLE_LABEL",
    "UnregisteredPanic",
    "UnregisteredPanics",
    "UnregisteredReport",
    "alarm_id",
    "panic_note",
    "panic_signal",
]
