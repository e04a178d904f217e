"""The rules engine inside the running gateway: bus in, signals out, timers, reload, state.

Usage (from the gateway runtime)::

    service = RulesService(Path("config/rules"), state_dir=data_dir / "rules",
                           device_labels=labels_from_registry(registry))
    await service.start(bus)        # restores state, subscribes (critical), starts the tick
    app.state.rules = service       # for gateway.api.routes.rules
    ...
    await service.stop()            # stops, persists state

The constructor raises ``ConfigErrors`` when the rule files are invalid.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from gateway.bus import BatchSubscription, EventBus
from gateway.config import ConfigError, ConfigErrors
from gateway.config.fingerprint import tree_fingerprint
from gateway.events import Event, utcnow
from rules.context import LabelLookup
from rules.engine import Engine, EngineSettings, RuleState
from rules.loader import load_rules
from rules.ruleset import RuleSet
from rules.signal import Signal
from rules.sink import MemorySink, SignalSink
from rules.state import load_state, save_state
from rules.watchlist import WatchlistProvider

log = logging.getLogger(__name__)

YIELD_EVERY = 256  # events evaluated before other tasks get a turn

Clock = Callable[[], datetime]


class RulesService:
    """Async wrapper around the pure ``Engine``.

    Args:
        rule_dir: directory of rule files (or one file).
        clock: the gateway clock; drives absence/duration timers (default: UTC now).
        sink: receives every signal (default: a ``MemorySink`` that logs and keeps 500).
        state_dir: where ``rules_state.json`` lives; None disables persistence.
        device_labels: device id → labels (place, zone, household, recorder, …), optional.
        watchlist_provider: watch-list id → values (e.g. from the database), optional.
        settings: engine settings (late tolerance, time zone, bounds).
        tick_s: how often timers are advanced (and files checked / state saved when due).
        persist_every_s: how often state is saved while running (clock seconds).
        watch_every_s: how often rule files are checked for changes; 0 disables.
    """

    def __init__(
        self,
        rule_dir: Path,
        *,
        clock: Clock = utcnow,
        sink: SignalSink | None = None,
        state_dir: Path | None = None,
        device_labels: LabelLookup | None = None,
        watchlist_provider: WatchlistProvider | None = None,
        settings: EngineSettings | None = None,
        tick_s: float = 1.0,
        persist_every_s: float = 60.0,
        watch_every_s: float = 5.0,
    ) -> None:
        self.rule_dir = rule_dir
        self.clock = clock
        self.sink: SignalSink = sink if sink is not None else MemorySink()
        self.state_dir = state_dir
        self.settings = settings or EngineSettings()
        self.tick_s = tick_s
        self.persist_every_s = persist_every_s
        self.watch_every_s = watch_every_s
        self._provider = watchlist_provider
        self._signature = tree_fingerprint(rule_dir)
        self.engine = Engine(self._load(), self.settings, device_labels)
        self.last_reload_errors: list[ConfigError] = []
        self.errors = 0  # unexpected failures while processing (logged)
        self._last_persist: datetime | None = None
        self._last_watch: datetime | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._bus: EventBus | None = None
        self._sub: BatchSubscription | None = None
        self._in_hand = 0  # events of the batch being evaluated, not yet done
        # Called after each event is evaluated and its signals handed to the sink (the
        # gateway uses it to release a panic's MQTT acknowledgement, gateway.ingest.ack_gate).
        self.on_evaluated: Callable[[Event, list[Signal]], None] | None = None

    @property
    def backlog(self) -> int:
        """Events received from the bus and not yet evaluated."""
        return self._in_hand + (0 if self._sub is None else self._sub.pending)

    def _load(self) -> RuleSet:
        return load_rules(
            self.rule_dir, watchlist_provider=self._provider, timezone=self.settings.timezone
        )

    # ---- lifecycle ------------------------------------------------------------------------

    async def start(self, bus: EventBus) -> None:
        """Restore saved state, subscribe to the bus (critical: no event is dropped) and start
        consuming and ticking."""
        self.restore()
        self._bus = bus
        self._sub = bus.subscribe_batches("rules")
        self._tasks = [
            asyncio.create_task(self.run(self._sub), name="rules-consume"),
            asyncio.create_task(self._ticker(), name="rules-tick"),
        ]

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Evaluate what is already queued (up to ``drain_timeout_s``), stop, save state."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + drain_timeout_s
        consuming = self._tasks[0] if self._tasks else None
        # Polled: the backlog is an asyncio.Queue owned by the bus, with no "empty" event.
        while self.backlog and consuming and not consuming.done() and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        if self.backlog:
            log.error("rules: stopped with %d events not evaluated", self.backlog)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._bus is not None and self._sub is not None:
            self._bus.unsubscribe(self._sub)
        self.persist()

    async def run(self, subscription: BatchSubscription) -> None:
        """Consume events until cancelled, a batch at a time."""
        while True:
            await self.handle_batch(await subscription.get())

    async def handle_batch(self, events: list[Event]) -> None:
        """``handle`` for each event in order, without a coroutine per event: the rules loop
        awaits only to hand signals on, and lets other tasks run every ``YIELD_EVERY``."""
        self._in_hand = len(events)
        try:
            for n, event in enumerate(events, 1):
                signals = self._evaluate(event)
                if signals is not None:
                    if signals:
                        await self._deliver(signals)
                    if self.on_evaluated is not None:
                        self.on_evaluated(event, signals)
                self._in_hand -= 1
                if n % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        finally:
            self._in_hand = 0

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            await self.tick()

    # ---- work -----------------------------------------------------------------------------

    def _evaluate(self, event: Event) -> list[Signal] | None:
        """The engine's signals for ``event``; None when it failed (logged and counted)."""
        try:
            return self.engine.process(event)
        except Exception:
            self.errors += 1
            log.exception("rules: failed on event %s", event.event_id)
            return None

    async def handle(self, event: Event) -> list[Signal]:
        signals = self._evaluate(event)
        if signals is None:
            return []
        await self._deliver(signals)
        if self.on_evaluated is not None:
            self.on_evaluated(event, signals)
        return signals

    async def tick(self) -> list[Signal]:
        """Advance timers to the clock; save state and check rule files when due."""
        now = self.clock()
        try:
            signals = self.engine.advance(now)
        except Exception:
            self.errors += 1
            log.exception("rules: timer evaluation failed")
            signals = []
        await self._deliver(signals)
        if self.watch_every_s and _due(self._last_watch, now, self.watch_every_s):
            self._last_watch = now
            self.check_files()
        if self.state_dir is not None and _due(self._last_persist, now, self.persist_every_s):
            self.persist()
        return signals

    async def _deliver(self, signals: list[Signal]) -> None:
        for signal in signals:
            try:
                await self.sink.emit(signal)
            except Exception:
                self.errors += 1
                log.exception("rules: sink failed on signal %s", signal.signal_id)

    # ---- control --------------------------------------------------------------------------

    def reload(self) -> list[ConfigError]:
        """Validate the rule files and swap them in atomically. On errors the running rule
        set stays and the errors are returned."""
        self._signature = tree_fingerprint(self.rule_dir)
        try:
            ruleset = self._load()
        except ConfigErrors as exc:
            self.last_reload_errors = exc.errors
            log.error("rules reload rejected, keeping the running rules:\n%s", exc)
            return exc.errors
        self.engine.swap(ruleset)
        self.last_reload_errors = []
        log.info("rules reloaded: %d rules", len(ruleset.rules))
        return []

    def check_files(self) -> list[ConfigError] | None:
        """Reload when a file under the rule directory changed; None when nothing changed."""
        if tree_fingerprint(self.rule_dir) == self._signature:
            return None
        return self.reload()

    def set_enabled(self, rule_id: str, enabled: bool) -> RuleState | None:
        if not self.engine.set_enabled(rule_id, enabled):
            return None
        return self.rule(rule_id)

    def forget_device(self, device_id: str) -> int:
        """The device left the registry: no offline or duration signal for it any more."""
        dropped = self.engine.forget_device(device_id)
        if dropped:
            log.info("rules: forgot %d timer group(s) of device %s", dropped, device_id)
        return dropped

    def rules(self) -> list[RuleState]:
        return self.engine.status()

    def rule(self, rule_id: str) -> RuleState | None:
        return next((r for r in self.engine.status() if r.id == rule_id), None)

    # ---- persistence ----------------------------------------------------------------------

    def persist(self) -> None:
        if self.state_dir is None:
            return
        self._last_persist = self.clock()
        try:
            save_state(self.state_dir, self.engine.snapshot())
        except OSError:
            log.exception("rules: cannot save state to %s", self.state_dir)

    def restore(self) -> bool:
        """Load state saved by an earlier run; True when there was some."""
        if self.state_dir is None:
            return False
        data = load_state(self.state_dir)
        if data is None:
            return False
        try:
            self.engine.restore(data, self.clock())
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            log.warning("rules: saved state ignored (%s)", exc)
            return False
        return True


def _due(last: datetime | None, now: datetime, every: float) -> bool:
    return last is None or (now - last).total_seconds() >= every
