"""The bounded quarantine: which quarantined messages are kept as rows, what is logged, and
exact counts of everything.

Anyone the broker admits can publish, and device ids and topics are the publisher's choice,
so whatever arrives the quarantine must cost little and hold little:

- every message is counted, exactly: per reason since start (``received``, ``kept``) and per
  reason and minute for the database (``drain``, written by the batch writer);
- rows are sampled past a rate: in each clock minute, of one reason from one source (the
  device id, else the topic) the first ``per_source`` messages are kept, of one reason at most
  ``per_reason``, and in all at most ``total``; the rest are only counted. The per-source
  counts exist only for sources that were given a row this minute (at most ``total`` of
  them), so a storm of invented ids cannot grow them;
- a (reason, source) pair is logged the first time it is seen (remembered in a bounded LRU),
  at most ``log_lines`` lines per reason a minute; for every minute in which lines or rows were
  held back, one summary line per reason says how many;
- the table's total size has a cap too: the batch writer evicts the oldest rows past it.

Thread-safe: the MQTT receive thread, the event loop (ONVIF, receivers) and the writer call it.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime

log = logging.getLogger("gateway.ingest.quarantine")

LOGGED_PAIRS = 4096  # (reason, source) pairs remembered as already logged
SOURCE_CHARS = 200  # of a source (an MQTT topic may be 64 KB): what the state keeps


@dataclass(frozen=True, slots=True)
class MinuteCount:
    """Messages quarantined for one reason in one clock minute: all of them, and rows kept."""

    minute: datetime  # UTC, the start of the minute
    reason: str
    received: int
    kept: int


@dataclass(slots=True)
class _Window:
    """The current minute's counts (reset when the minute changes)."""

    minute: int = -1  # minutes since the epoch
    received: Counter[str] = field(default_factory=Counter)
    kept: Counter[str] = field(default_factory=Counter)
    kept_all: int = 0
    by_source: dict[tuple[str, str], int] = field(default_factory=dict)
    lines: Counter[str] = field(default_factory=Counter)  # log lines written, per reason
    unlogged: Counter[str] = field(default_factory=Counter)  # new pairs not logged (budget)
    sources: dict[str, set[str]] = field(default_factory=dict)  # a few sources, for summaries


class QuarantineSampler:
    """Decides per message whether its quarantine row is kept (see the module doc)."""

    def __init__(
        self, *, per_source: int = 10, per_reason: int = 100, total: int = 200, log_lines: int = 5
    ) -> None:
        self.per_source = per_source
        self.per_reason = per_reason
        self.total = total
        self.log_lines = log_lines
        self.received: Counter[str] = Counter()  # exact, per reason, since start
        self.kept: Counter[str] = Counter()  # rows kept, per reason, since start
        self._lock = threading.Lock()
        self._window = _Window()
        self._logged: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._pending: dict[tuple[int, str], list[int]] = {}  # (minute, reason) → [received, kept]

    @property
    def dropped(self) -> Counter[str]:
        """Messages counted but not kept as rows, per reason, since start."""
        return self.received - self.kept

    def admit(self, reason: str, source: str, at: datetime, detail: str = "") -> bool:
        """Count one quarantined message; True when its row is to be kept."""
        source = source[:SOURCE_CHARS]
        minute = int(at.timestamp()) // 60
        with self._lock:
            w = self._window
            if minute > w.minute:
                self._roll(minute)
                w = self._window
            self.received[reason] += 1
            w.received[reason] += 1
            kept = False
            if w.kept_all < self.total and w.kept[reason] < self.per_reason:
                key = (reason, source)
                n = w.by_source.get(key, 0)
                if n < self.per_source:
                    w.by_source[key] = n + 1
                    w.kept[reason] += 1
                    w.kept_all += 1
                    self.kept[reason] += 1
                    kept = True
            pending = self._pending.setdefault((w.minute, reason), [0, 0])
            pending[0] += 1
            pending[1] += kept
            self._log(w, reason, source, detail)
        return kept

    def keep_always(self, reason: str, source: str, at: datetime, detail: str = "") -> None:
        """Count a message whose row is kept whatever the rates (a panic's)."""
        source = source[:SOURCE_CHARS]
        minute = int(at.timestamp()) // 60
        with self._lock:
            if minute > self._window.minute:
                self._roll(minute)
            w = self._window
            self.received[reason] += 1
            self.kept[reason] += 1
            w.received[reason] += 1
            w.kept[reason] += 1
            pending = self._pending.setdefault((w.minute, reason), [0, 0])
            pending[0] += 1
            pending[1] += 1
            self._log(w, reason, source, detail)

    def drain(self) -> list[MinuteCount]:
        """Counts not yet handed out (the batch writer stores them)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        return [
            MinuteCount(datetime.fromtimestamp(m * 60, UTC), reason, n[0], n[1])
            for (m, reason), n in pending.items()
        ]

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def tick(self, now: datetime) -> None:
        """Close the minute if it has passed (writes its summary lines); call periodically."""
        minute = int(now.timestamp()) // 60
        with self._lock:
            if minute > self._window.minute >= 0:
                self._roll(minute)

    # -- internals (under the lock) ------------------------------------------------------

    def _log(self, w: _Window, reason: str, source: str, detail: str) -> None:
        key = (reason, source)
        if key in self._logged:
            self._logged.move_to_end(key)
            return
        if w.lines[reason] >= self.log_lines:
            w.unlogged[reason] += 1
            few = w.sources.setdefault(reason, set())
            if len(few) < 3:
                few.add(repr(source[:80]))
            return
        w.lines[reason] += 1
        self._logged[key] = None
        if len(self._logged) > LOGGED_PAIRS:
            self._logged.popitem(last=False)
        # Detail may quote payload fragments; never the raw bytes (personal data).
        log.warning(
            "quarantined %s from %r: %s (logged once per source and reason, at most %d a minute)",
            reason, source, detail[:300], self.log_lines,
        )  # fmt: skip

    def _roll(self, minute: int) -> None:
        w = self._window
        for reason, received in sorted(w.received.items()):
            dropped = received - w.kept[reason]
            if w.unlogged[reason] or dropped:
                log.warning(
                    "quarantine summary, minute %s: %d %s messages, %d kept as rows, %d over "
                    "the row rate only counted; %d new sources not logged (e.g. %s)",
                    datetime.fromtimestamp(w.minute * 60, UTC).strftime("%Y-%m-%d %H:%M"),
                    received, reason, w.kept[reason], dropped, w.unlogged[reason],
                    ", ".join(sorted(w.sources.get(reason, ()))) or "-",
                )  # fmt: skip
        self._window = _Window(minute=minute)
