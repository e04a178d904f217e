"""Rebuild a site's rule state from the database before its live traffic (docs/cluster.md,
"Rule state across a handover").

``SiteRebuild(db, rules)`` is the ``rebuild`` step of ``SiteSessions.acquire``: it reads the
site's stored events of each type some rule is triggered by over that type's horizon
(rules.rebuild.type_horizons_s, at most ``max_horizon_s``; at most ``max_events``, the
newest), and before them each device's last event over the absence rules' longer horizon
(rules.rebuild.absence_horizon_s, at most ``max_absence_horizon_s``: a 26-hour ``for`` needs
when each device was last heard, not a day of its events), replays them through the running
engine (rules.rebuild.replay_site), and
delivers to the rules' sink the *new* signals whose id the incident store does not hold —
the old owner stored the events but died before their incident. Signals it holds already
(the same stable id) and updates are dropped: they were delivered by the old owner.

``HeldSitesSink`` keeps a worker quiet about sites it no longer holds: the absence and
duration timers of a lost site's groups would otherwise report all its devices silent here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, or_, select, tuple_

from gateway.events import Event, utcnow
from gateway.incidents.tables import incident_signals
from gateway.storage.tables import events as events_table
from gateway.storage.times import utc
from rules.rebuild import (
    Replayed,
    absence_horizon_s,
    last_event_types,
    replay_site,
    type_horizons_s,
)
from rules.service import RulesService
from rules.signal import Signal
from rules.sink import SignalSink

log = logging.getLogger(__name__)

MAX_HORIZON_S = 24 * 3600.0  # longer spans are cut here: docs/cluster.md
MAX_ABSENCE_HORIZON_S = 7 * 24 * 3600.0  # one row per device: longer is affordable
MAX_EVENTS = 200_000  # the newest this many events of the horizon are replayed
_ID_CHUNK = 500
REPLAY_CHUNK = 2000  # events replayed between two turns of the event loop


@dataclass(frozen=True)
class RebuildReport:
    site: str
    since: datetime
    horizon_s: float
    read: int  # events read from the database (the last ones of devices included)
    last_heard: int  # devices' last events from before the horizon (absence rules)
    replayed: int  # evaluated (not already seen by this engine)
    signals: int  # produced by the replay
    delivered: int  # new signals the incident store did not have
    truncated: bool  # more than ``max_events`` in the horizon: the oldest were left out


def event_of(row: Any) -> Event:
    """An ``Event`` from a row of the events table."""
    m = row._mapping
    return Event.model_validate(
        {
            "event_id": m["event_id"],
            "occurred_at": utc(m["occurred_at"]),
            "received_at": utc(m["received_at"]),
            "site": m["site"],
            "device_id": m["device_id"],
            "kind": m["kind"],
            "type": m["type"],
            "attributes": {**(m["attributes"] or {}), "kind": m["kind"]},
            "source": m["source"],
        }
    )


def load_site_events(
    db: Engine, site: str, now: datetime, horizons: Mapping[tuple[str, str], float], limit: int
) -> tuple[list[Event], bool]:
    """``site``'s stored events of each (kind, type) in ``horizons`` that happened within its
    horizon (seconds before ``now``), in arrival order; at most ``limit`` (the newest), and
    whether more were there."""
    if not horizons:
        return [], False
    by_horizon: dict[float, list[tuple[str, str]]] = {}
    for pair, seconds in sorted(horizons.items()):
        by_horizon.setdefault(seconds, []).append(pair)
    c = events_table.c
    oldest = now - timedelta(seconds=max(by_horizon))
    stmt = (
        select(*[col for col in events_table.c if col.name != "raw"])
        .where(
            c.site == site,
            c.occurred_at >= oldest,
            or_(
                *(
                    and_(
                        tuple_(c.kind, c.type).in_(pairs),
                        c.occurred_at >= now - timedelta(seconds=seconds),
                    )
                    for seconds, pairs in by_horizon.items()
                )
            ),
        )
        .order_by(c.received_at.desc(), c.seq.desc())
        .limit(limit + 1)
    )
    with db.connect() as conn:
        rows = conn.execute(stmt).all()
    truncated = len(rows) > limit
    out: list[Event] = []
    for row in reversed(rows[:limit]):
        try:
            out.append(event_of(row))
        except ValueError:  # a row this version cannot read: skipped, said
            log.warning("rebuild: stored event %s of %s unreadable, skipped", row.event_id, site)
    return out, truncated


def load_last_events(
    db: Engine, site: str, since: datetime, until: datetime, pairs: Iterable[tuple[str, str]]
) -> list[Event]:
    """Each device's last event of the (kind, type) ``pairs`` at ``site`` between ``since``
    and ``until``, in arrival order."""
    wanted = sorted(set(pairs))
    if not wanted or since >= until:
        return []
    c = events_table.c
    window = (
        c.site == site,
        c.occurred_at >= since,
        c.occurred_at < until,
        tuple_(c.kind, c.type).in_(wanted),
    )
    last = select(func.max(c.seq)).where(*window).group_by(c.device_id).scalar_subquery()
    stmt = (
        select(*[col for col in events_table.c if col.name != "raw"])
        .where(*window, c.seq.in_(last))
        .order_by(c.received_at, c.seq)
    )
    with db.connect() as conn:
        rows = conn.execute(stmt).all()
    out: list[Event] = []
    for row in rows:
        try:
            out.append(event_of(row))
        except ValueError:
            log.warning("rebuild: stored event %s of %s unreadable, skipped", row.event_id, site)
    return out


def stored_signal_ids(db: Engine, signal_ids: Sequence[str]) -> set[str]:
    """The ids among ``signal_ids`` that the incident store holds."""
    found: set[str] = set()
    c = incident_signals.c
    with db.connect() as conn:
        for i in range(0, len(signal_ids), _ID_CHUNK):
            chunk = list(signal_ids[i : i + _ID_CHUNK])
            found.update(conn.execute(select(c.signal_id).where(c.signal_id.in_(chunk))).scalars())
    return found


class SiteRebuild:
    """``await rebuild(site)``: the site's rule state as the old owner left it (module doc)."""

    def __init__(
        self,
        db: Engine,
        rules: RulesService,
        *,
        max_horizon_s: float = MAX_HORIZON_S,
        max_absence_horizon_s: float = MAX_ABSENCE_HORIZON_S,
        max_events: int = MAX_EVENTS,
        clock: Callable[[], datetime] = utcnow,
        grace_s: float | None = None,
    ) -> None:
        self.db = db
        # timers due during the handover wait this long (the restart's grace by default)
        self.grace_s = rules.engine.settings.restart_grace_s if grace_s is None else grace_s
        self.rules = rules
        self.max_horizon_s = max_horizon_s
        self.max_absence_horizon_s = max_absence_horizon_s
        self.max_events = max_events
        self.clock = clock
        self.last: dict[str, RebuildReport] = {}

    def type_horizons_s(self) -> dict[tuple[str, str], float]:
        """(kind, type) → seconds replayed (``rules.rebuild.type_horizons_s``, capped)."""
        engine = self.rules.engine
        horizons = type_horizons_s(engine.ruleset, engine.settings.late_tolerance_s)
        return {t: min(h, self.max_horizon_s) for t, h in horizons.items()}

    def horizon_s(self) -> float:
        """The longest of the types' horizons."""
        return max(self.type_horizons_s().values(), default=0.0)

    def absence_horizon_s(self) -> float:
        engine = self.rules.engine
        tolerance = engine.settings.late_tolerance_s
        return min(absence_horizon_s(engine.ruleset, tolerance), self.max_absence_horizon_s)

    async def __call__(self, site: str) -> RebuildReport:
        engine = self.rules.engine
        horizon = self.horizon_s()
        now = self.clock()
        since = now - timedelta(seconds=horizon)
        window, truncated = await asyncio.to_thread(
            load_site_events, self.db, site, now, self.type_horizons_s(), self.max_events
        )
        heard_since = now - timedelta(seconds=self.absence_horizon_s())
        last_types = last_event_types(engine.ruleset)
        last = await asyncio.to_thread(
            load_last_events, self.db, site, heard_since, now, last_types
        )
        # one arrival order for both (a device's last event may be in the window too)
        seen = {e.event_id for e in window}
        events = sorted(
            [e for e in last if e.event_id not in seen] + window, key=lambda e: e.received_at
        )
        if truncated:
            log.warning("rebuild: site %s has more than %d events in its %.0f s horizon; "
                        "the oldest were not replayed", site, self.max_events, horizon)  # fmt: skip
        # On the loop (the engine is not thread-safe), letting other sites' traffic through
        # between chunks: the watermark is not touched, and this site's timers that came due
        # while nobody owned it are held first (the live ticker runs meanwhile): they fire
        # after the grace unless the messages queued at the broker stop them.
        replayed = Replayed()
        hold_until = now + timedelta(seconds=self.grace_s)
        for start in range(0, len(events), REPLAY_CHUNK):
            replayed.add(replay_site(engine, events[start : start + REPLAY_CHUNK]))
            engine.hold_timers(site, hold_until)
            await asyncio.sleep(0)
        fresh = replayed.new_signals()
        known = await asyncio.to_thread(stored_signal_ids, self.db, [s.signal_id for s in fresh])
        missing = [s for s in fresh if s.signal_id not in known]
        for signal in missing:
            log.warning("rebuild: site %s signal %s was not stored by its old owner; raising it",
                        site, signal.signal_id)  # fmt: skip
            await self.rules.sink.emit(signal)
        report = RebuildReport(
            site,
            since,
            horizon,
            len(events),
            len(last),
            replayed.events,
            len(replayed.signals),
            len(missing),
            truncated,
        )
        self.last[site] = report
        log.info("rebuild: site %s: %d events over %.0f s replayed, %d signals, %d raised",
                 site, replayed.events, horizon, len(replayed.signals), len(missing))  # fmt: skip
        return report


class HeldSitesSink:
    """Passes every signal on, except a timer rule's (absence, duration) for a site this
    worker does not hold: its groups there are stale (module doc). Event-driven signals —
    a panic heard by a push receiver here, whatever the site — always pass."""

    def __init__(self, inner: SignalSink, rules: RulesService, holds: Callable[[str], bool]):
        self.inner = inner
        self.rules = rules
        self.holds = holds
        self.dropped = 0

    async def emit(self, signal: Signal) -> None:
        if signal.site is not None and not self.holds(signal.site) and self._timer(signal):
            self.dropped += 1
            return
        await self.inner.emit(signal)

    def _timer(self, signal: Signal) -> bool:
        for rule in self.rules.engine.ruleset.rules:
            if rule.id == signal.rule_id:
                return rule.rule.condition.type in ("absence", "duration")
        return False
