"""The queue between the rules engine and incident storage.

The rules loop must never wait for the database: while it waits, every event behind it (a
panic press included) waits too. So signals are queued here and stored by one worker task,
in this order each round:

1. urgent new signals (P1, e.g. panic), in arrival order;
2. other new signals, in arrival order;
3. updates, all in one transaction. Consecutive updates of one signal with the same state are
   merged first (events appended), so a burst of repeats costs one write, not one per event.
   When only updates wait, the worker lets them gather for up to ``update_gather_s`` first (a
   new signal ends the wait at once): an update only appends events to an incident already
   raised and routed, and a storm of them costs one transaction per gathering, not per
   handful.

New signals always go before updates, so an update never overtakes the signal it updates.
A transient database failure (locked, connection lost) is retried with backoff until it
succeeds: a signal is not dropped because the database was briefly busy. Any other failure is
logged and counted, and the worker carries on with the next signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from sqlalchemy.exc import DBAPIError, OperationalError

from gateway.storage.outage import DatabaseOutage
from rules.model import Severity
from rules.signal import Signal

log = logging.getLogger(__name__)

RETRY_FIRST_S = 0.05
RETRY_MAX_S = 5.0
UPDATE_GATHER_S = 0.2  # longest wait for more updates before storing those queued


@dataclass(slots=True)
class Queued:
    signal: Signal
    at: datetime  # gateway time the signal was emitted


StoreOpen = Callable[[Queued], Awaitable[None]]
StoreUpdates = Callable[[list[Queued]], Awaitable[None]]


def merge(older: Signal, newer: Signal) -> Signal:
    """One update carrying both updates' events (all of them: a held acknowledgement waits
    for each, gateway.ingest.ack_gate; the incident keeps only its newest ids), the newer
    one's state, text and counts."""
    events = [*older.events, *newer.events]
    return newer.model_copy(
        update={"events": events, "event_count": max(older.event_count, newer.event_count)}
    )


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


class SignalQueue:
    """Accepts signals without waiting; one worker task stores them (see module doc)."""

    def __init__(
        self,
        store_open: StoreOpen,
        store_updates: StoreUpdates,
        *,
        update_gather_s: float = UPDATE_GATHER_S,
        outage: DatabaseOutage | None = None,
    ) -> None:
        self._store_open = store_open
        self.outage = outage  # told of each transient failure and each success
        self.update_gather_s = update_gather_s
        self._store_updates = store_updates
        self._urgent: deque[Queued] = deque()
        self._new: deque[Queued] = deque()
        self._updates: list[Queued] = []
        self._last_update: dict[str, int] = {}  # signal id → index of its last queued update
        self._wake: asyncio.Event | None = None
        self._opening: asyncio.Event | None = None  # a new signal waits (ends a gathering)
        self._idle: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self.merged = 0  # updates folded into an earlier queued one
        self.retries = 0
        self.failures = 0

    @property
    def pending(self) -> int:
        return len(self._urgent) + len(self._new) + len(self._updates)

    def put(self, signal: Signal, at: datetime) -> None:
        item = Queued(signal, at)
        if signal.kind == "update":
            self._put_update(item)
        elif signal.severity is Severity.P1:
            self._urgent.append(item)
        else:
            self._new.append(item)
        self._start()
        assert self._wake is not None and self._idle is not None and self._opening is not None
        self._idle.clear()
        self._wake.set()
        if signal.kind != "update":
            self._opening.set()

    def _put_update(self, item: Queued) -> None:
        sid = item.signal.signal_id
        index = self._last_update.get(sid)
        if index is not None and self._updates[index].signal.state == item.signal.state:
            earlier = self._updates[index]
            self._updates[index] = Queued(merge(earlier.signal, item.signal), earlier.at)
            self.merged += 1
            return
        self._last_update[sid] = len(self._updates)
        self._updates.append(item)

    async def settled(self, within_s: float | None = None) -> bool:
        """Wait until everything put so far is stored (or failed); False on timeout."""
        if self._idle is None:
            return True
        try:
            await asyncio.wait_for(self._idle.wait(), within_s)
        except TimeoutError:
            return False
        return True

    async def close(self, within_s: float = 10.0) -> None:
        """Store what is queued (up to ``within_s``), then stop the worker."""
        if not await self.settled(within_s):
            log.error("incident queue: %d signals not stored at shutdown", self.pending)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    # -- worker -------------------------------------------------------------------------
    def _start(self) -> None:
        if self._worker is None or self._worker.done():
            self._wake = asyncio.Event()
            self._opening = asyncio.Event()
            self._idle = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(
                self._run(), name="incident-signals"
            )

    async def _run(self) -> None:
        assert self._wake is not None and self._idle is not None and self._opening is not None
        loop = asyncio.get_running_loop()
        gather_until: float | None = None  # when the updates waiting now are stored at the latest
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.pending:
                if self._urgent or self._new:
                    item = (self._urgent or self._new).popleft()
                    await self._persist(partial(self._store_open, item), item.signal)
                else:
                    if self.update_gather_s > 0:
                        if gather_until is None:
                            gather_until = loop.time() + self.update_gather_s
                        await self._gather_updates(gather_until - loop.time())
                        if self._urgent or self._new:
                            continue  # a new signal goes first; the updates' wait goes on
                    gather_until = None
                    batch, self._updates, self._last_update = self._updates, [], {}
                    await self._persist(partial(self._store_updates, batch), batch[0].signal)
            if not self.pending:
                self._idle.set()

    async def _gather_updates(self, within_s: float) -> None:
        """Let more updates arrive for ``within_s``, or until a new signal does."""
        assert self._opening is not None
        self._opening.clear()
        if within_s <= 0 or self._urgent or self._new:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._opening.wait(), within_s)

    async def _persist(self, store: Callable[[], Awaitable[None]], first: Signal) -> None:
        delay = RETRY_FIRST_S
        while True:
            try:
                await store()
                if self.outage is not None:
                    self.outage.recovered()
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not _transient(exc):
                    self.failures += 1
                    log.exception("incident queue: storing signal %s failed", first.signal_id)
                    return
                self.retries += 1
                if self.outage is not None:
                    self.outage.failed(exc)
                log.warning(
                    "incident queue: database busy or unavailable (%s); retrying in %.2fs",
                    exc.__class__.__name__,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
