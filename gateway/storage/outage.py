"""What the gateway knows about its database being down, shared by its writers.

The event batch writer and the incident service report each failed and each successful
write here (``failed``, ``recovered``); health reads it (``/api/health``: database
unreachable since …, ingest paused) and the incident service reads it to tell the police
desk's live channels of a panic at once instead of waiting for a write that cannot succeed
(``gateway.incidents.unstored``). See docs/database-outage.md.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass

from sqlalchemy import Engine


@dataclass(frozen=True, slots=True)
class OutageState:
    down_since: float | None  # wall time of the first failed write of this outage
    last_error: str | None
    failures: int  # failed writes in this outage
    outages: int  # outages since the start, this one included


class DatabaseOutage:
    """Thread-safe: the writer thread, the incident thread and the loop report and read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._last_error: str | None = None
        self._failures = 0
        self._outages = 0

    @property
    def down(self) -> bool:
        return self._down_since is not None

    def failed(self, exc: BaseException) -> None:
        """A write failed for a reason worth retrying (unreachable, locked, read-only)."""
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
        with self._lock:
            if self._down_since is None:
                self._down_since = time.time()
                self._outages += 1
                self._failures = 0
            self._failures += 1
            self._last_error = error

    def recovered(self) -> None:
        """A write succeeded."""
        if self._down_since is None:
            return
        with self._lock:
            self._down_since = None
            self._failures = 0

    def state(self) -> OutageState:
        with self._lock:
            return OutageState(self._down_since, self._last_error, self._failures, self._outages)


_OUTAGES: weakref.WeakKeyDictionary[Engine, DatabaseOutage] = weakref.WeakKeyDictionary()
_OUTAGES_LOCK = threading.Lock()


def outage_for(engine: Engine) -> DatabaseOutage:
    """The outage record every writer of ``engine`` in this process shares."""
    with _OUTAGES_LOCK:
        outage = _OUTAGES.get(engine)
        if outage is None:
            outage = _OUTAGES[engine] = DatabaseOutage()
        return outage
