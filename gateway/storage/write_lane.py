"""Turn-taking for SQLite's one write lock inside the gateway: incident writes go first.

SQLite lets one connection write at a time. Left to SQLite, a writer that finds the lock
taken sleeps in its busy handler (1, 2, 5, 10, 15, 20, 25 … ms, then tries again): an
incident's commit that arrives while the batch writer holds the lock waits for the next
step of that ladder, not for the lock. This lane serialises the gateway's own writers in
process instead, so the one waiting is woken the moment the lock is free, and orders them:

- ``urgent`` (the incident service's thread: a panic's incident and its outbox rows) goes
  before any ``routine`` writer waiting at the same time;
- ``routine`` (the event batch writer) waits while an urgent writer holds or waits for the
  lane, but not for ever: after ``MAX_YIELDS`` urgent turns taken while it waited, it goes
  next (a storm of incident updates cannot stop event storage);
- the lane is reentrant per thread (a transaction helper that calls another is fine).

Other processes on the same database still meet SQLite's busy handler; PostgreSQL locks
rows, not the database, so its engines get a lane that never waits (``lane_for``).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine

MAX_YIELDS = 8  # urgent turns a waiting routine writer lets go first


class WriteLane:
    """One in-process write lock with an urgent and a routine way in (see module doc)."""

    def __init__(self, *, max_yields: int = MAX_YIELDS) -> None:
        self.max_yields = max_yields
        self._cond = threading.Condition(threading.Lock())
        self._owner: int | None = None  # thread id holding the lane
        self._depth = 0
        self._urgent_waiting = 0
        self._routine_waiting = 0
        self._yielded = 0  # urgent turns taken while a routine writer waited
        self.urgent_turns = 0
        self.routine_turns = 0
        self.routine_waits = 0  # routine turns that had to wait for an urgent writer

    @property
    def busy(self) -> bool:
        return self._owner is not None

    @property
    def urgent_waiting(self) -> int:
        return self._urgent_waiting

    @contextmanager
    def urgent(self) -> Iterator[None]:
        """Hold the lane, ahead of routine writers."""
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
            else:
                self._urgent_waiting += 1
                try:
                    while self._owner is not None or self._routine_due():
                        self._cond.wait()
                finally:
                    self._urgent_waiting -= 1
                self._take(me)
                self.urgent_turns += 1
                if self._routine_waiting:
                    self._yielded += 1
        try:
            yield
        finally:
            self._release()

    @contextmanager
    def routine(self) -> Iterator[None]:
        """Hold the lane once no urgent writer holds or waits for it (or it waited enough)."""
        me = threading.get_ident()
        with self._cond:
            if self._owner == me:
                self._depth += 1
            else:
                waited = False
                self._routine_waiting += 1
                try:
                    while self._owner is not None or (
                        self._urgent_waiting and not self._routine_due()
                    ):
                        waited = True
                        self._cond.wait()
                finally:
                    self._routine_waiting -= 1
                self._take(me)
                self._yielded = 0
                self.routine_turns += 1
                self.routine_waits += int(waited)
        try:
            yield
        finally:
            self._release()

    def _routine_due(self) -> bool:
        """A routine writer has let ``max_yields`` urgent turns pass: it goes next."""
        return self._routine_waiting > 0 and self._yielded >= self.max_yields

    def _take(self, me: int) -> None:
        self._owner = me
        self._depth = 1

    def _release(self) -> None:
        with self._cond:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._cond.notify_all()


class OpenLane(WriteLane):
    """A lane that never waits (databases that lock rows, not the whole database)."""

    @contextmanager
    def urgent(self) -> Iterator[None]:
        yield

    @contextmanager
    def routine(self) -> Iterator[None]:
        yield


_LANES: weakref.WeakKeyDictionary[Engine, WriteLane] = weakref.WeakKeyDictionary()
_LANES_LOCK = threading.Lock()


def lane_for(engine: Engine) -> WriteLane:
    """The lane every writer of ``engine`` in this process shares."""
    with _LANES_LOCK:
        lane = _LANES.get(engine)
        if lane is None:
            lane = WriteLane() if engine.dialect.name == "sqlite" else OpenLane()
            _LANES[engine] = lane
        return lane
