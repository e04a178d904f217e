"""Failed sign-ins in the audit log: one row per account name, address and interval.

A guesser used to add one audit row per try. Here failures (and tries refused by the
throttle) are counted in memory per (name, address, interval) and written as one row when
the interval is over (``due``), or at once when the gateway stops (``due(force=True)``):
``auth.login_failed`` with the count, how many were throttled, and the first and last
time. The number of open counts is bounded; when full, the oldest are written early.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.audit.chain import AuditEntry

MAX_OPEN = 10_000


@dataclass(slots=True)
class _Open:
    target: str
    role: str
    first: datetime
    last: datetime
    failures: int = 0
    throttled: int = 0


class FailedLogins:
    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._lock = threading.Lock()
        self._open: OrderedDict[tuple[str, str, int], _Open] = OrderedDict()
        self._oldest: int | None = None  # the oldest interval with an open count

    def _bucket(self, at: datetime) -> int:
        return math.floor(at.timestamp() / self.interval_s)

    def add(
        self, name: str, address: str, at: datetime, *, target: str, role: str, throttled: bool
    ) -> list[tuple[AuditEntry, datetime]]:
        """Count one failed or throttled try; returns rows to write early (when full)."""
        key = (name, address, self._bucket(at))
        with self._lock:
            row = self._open.get(key)
            if row is None:
                row = self._open[key] = _Open(target, role, at, at)
                self._oldest = key[2] if self._oldest is None else min(self._oldest, key[2])
            row.last = at
            if throttled:
                row.throttled += 1
            else:
                row.failures += 1
            early = []
            while len(self._open) > MAX_OPEN:
                early.append(self._open.popitem(last=False))
        return [self._entry(k, r) for k, r in early]

    def due(self, now: datetime, *, force: bool = False) -> list[tuple[AuditEntry, datetime]]:
        """Rows of the intervals that are over (all of them with ``force``), oldest first."""
        current = self._bucket(now)
        with self._lock:
            if not force and (self._oldest is None or self._oldest >= current):
                return []  # the common case, without a walk over the open counts
            keys = [k for k in self._open if force or k[2] < current]
            rows = [(k, self._open.pop(k)) for k in keys]
            self._oldest = min((k[2] for k in self._open), default=None)
        rows.sort(key=lambda kr: kr[1].first)
        return [self._entry(k, r) for k, r in rows]

    def __len__(self) -> int:
        return len(self._open)

    def _entry(self, key: tuple[str, str, int], row: _Open) -> tuple[AuditEntry, datetime]:
        name, address, bucket = key
        start = datetime.fromtimestamp(bucket * self.interval_s, UTC)
        entry = AuditEntry(
            actor=name[:100] or "?",
            role=row.role,
            source_ip=address,
            action="auth.login_failed",
            target=row.target,
            status=401,
            after={
                "failures": row.failures,
                "throttled": row.throttled,
                "first_at": row.first.isoformat(),
                "last_at": row.last.isoformat(),
                "interval_start": start.isoformat(),
                "interval_s": self.interval_s,
            },
        )
        return entry, row.last
