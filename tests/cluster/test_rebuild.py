"""Rule state across a handover (issue 16 part 3): a site's new owner rebuilds its windows,
sequences and cooldowns from the stored events before live traffic. Two ``RulesService``s on
one database stand for the dead worker and the new owner; the incident store is real."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select

from gateway.cluster.rebuild import SiteRebuild, load_site_events
from gateway.events import Event
from gateway.incidents.runtime import IncidentsRuntime
from gateway.incidents.tables import incident_signals, incidents
from gateway.storage import tables
from gateway.storage.db import make_engine, migrate
from gateway.storage.writer import event_row
from rules.rebuild import replay_site
from rules.service import RulesService
from rules.signal import Signal
from tests.conftest import postgres_database
from tests.incidents.helpers import T0, FakeClock, runtime

SITE = "demo-compound"  # in the registry the incident store routes with
OTHER = "other-compound"
RULES = """
rules:
  - id: breach
    severity: P2
    category: intrusion
    title: {zh: "周界入侵后门被强开", en: "Intrusion then a forced door"}
    cooldown: 10m
    condition:
      type: sequence
      steps:
        - {kind: perimeter, type: intrusion}
        - {kind: access, type: door_forced_open}
      within: 2m
      group_by: [site]
"""
_ids = itertools.count()


def ev(type_: str, t: float, site: str = SITE) -> Event:
    kind = "perimeter" if type_ in ("intrusion", "motion") else "access"
    when = T0 + timedelta(seconds=t)
    return Event.model_validate(
        {
            "event_id": f"ev-{next(_ids)}",
            "occurred_at": when,
            "received_at": when,
            "site": site,
            "device_id": "cam-west" if kind == "perimeter" else "door-b1u1",
            "kind": kind,
            "type": type_,
        }
    )


class Recording:
    """The incident store's sink, recording what reaches it."""

    def __init__(self, inner: IncidentsRuntime) -> None:
        self.inner = inner
        self.signals: list[Signal] = []

    async def emit(self, signal: Signal) -> None:
        self.signals.append(signal)
        await self.inner.emit(signal)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with ExitStack() as stack:
        url = (
            stack.enter_context(postgres_database())
            if request.param == "postgres"
            else f"sqlite:///{tmp_path / 'shared.db'}"
        )
        engine = make_engine(url)
        migrate(engine)
        yield engine
        engine.dispose()


@pytest.fixture
async def store(db: Engine, tmp_path: Path) -> AsyncIterator[IncidentsRuntime]:
    rt = runtime(tmp_path, FakeClock(T0), engine=db)
    await rt.start()
    try:
        yield rt
    finally:
        await rt.stop()


@pytest.fixture
def rule_dir(tmp_path: Path) -> Path:
    d = tmp_path / "rules"
    d.mkdir()
    (d / "breach.yaml").write_text(RULES, encoding="utf-8")
    return d


class Clock:
    def __init__(self, t: float = 0.0) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return T0 + timedelta(seconds=self.t)


def worker(rule_dir: Path, sink: Any, clock: Clock) -> RulesService:
    return RulesService(rule_dir, clock=clock, sink=sink, watch_every_s=0)


def stored(db: Engine, *events: Event) -> None:
    with db.begin() as conn:
        conn.execute(insert(tables.events), [event_row(e) for e in events])


def incident_count(db: Engine) -> int:
    with db.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(incidents)).scalar_one())


async def live(service: RulesService, db: Engine, event: Event) -> list[Signal]:
    stored(db, event)  # the writer commits before the rules hear it, or about then
    return await service.handle(event)


async def test_a_sequence_begun_on_the_dead_worker_fires_once_on_the_new_owner(
    db: Engine, store: IncidentsRuntime, rule_dir: Path
) -> None:
    clock = Clock()
    sink = Recording(store)
    dead = worker(rule_dir, sink, clock)
    assert await live(dead, db, ev("intrusion", 0)) == []  # step 1, then the worker dies

    new = worker(rule_dir, sink, clock)
    # other sites' live traffic has moved the new owner's watermark past step 1 already
    clock.t = 60
    await live(new, db, ev("motion", 60, site=OTHER))
    report = await SiteRebuild(db, new, clock=clock)(SITE)
    assert (report.read, report.replayed, report.delivered) == (1, 1, 0)

    clock.t = 70
    [signal] = await live(new, db, ev("door_forced_open", 70))  # step 2, live
    assert signal.kind == "new" and [e.type for e in signal.events] == [
        "intrusion",
        "door_forced_open",
    ]
    assert [s.signal_id for s in sink.signals] == [signal.signal_id]
    assert incident_count(db) == 1


async def test_a_cooldown_begun_on_the_dead_worker_still_holds(
    db: Engine, store: IncidentsRuntime, rule_dir: Path
) -> None:
    clock = Clock()
    sink = Recording(store)
    dead = worker(rule_dir, sink, clock)
    await live(dead, db, ev("intrusion", 0))
    [first] = await live(dead, db, ev("door_forced_open", 30))
    assert first.kind == "new" and incident_count(db) == 1

    clock.t = 120
    new = worker(rule_dir, sink, clock)
    report = await SiteRebuild(db, new, clock=clock)(SITE)
    assert report.replayed == 2 and report.signals == 1  # fired again, in the replay only
    assert report.delivered == 0  # the incident store has it

    clock.t = 200  # a second breach, inside the 10-minute cooldown
    await live(new, db, ev("intrusion", 190))
    [again] = await live(new, db, ev("door_forced_open", 200))
    assert again.kind == "update" and again.signal_id == first.signal_id
    assert [s.kind for s in sink.signals] == ["new", "update"]
    assert incident_count(db) == 1


async def test_a_signal_the_dead_worker_never_stored_is_raised_by_the_rebuild(
    db: Engine, store: IncidentsRuntime, rule_dir: Path
) -> None:
    """Both steps were stored, then the worker died before the incident was."""
    stored(db, ev("intrusion", 0), ev("door_forced_open", 30))
    clock = Clock(40)
    sink = Recording(store)
    report = await SiteRebuild(db, worker(rule_dir, sink, clock), clock=clock)(SITE)
    assert report.delivered == 1
    assert [s.kind for s in sink.signals] == ["new"] and incident_count(db) == 1
    with db.connect() as conn:
        ids = conn.execute(select(incident_signals.c.signal_id)).scalars().all()
    assert ids == [sink.signals[0].signal_id]
    # the same rebuild again (another handover): nothing new, no second incident
    report = await SiteRebuild(db, worker(rule_dir, sink, clock), clock=clock)(SITE)
    assert (report.signals, report.delivered) == (1, 0) and incident_count(db) == 1


async def test_the_replay_reads_only_the_horizon_the_site_and_the_rules_types(
    db: Engine, rule_dir: Path
) -> None:
    old = ev("intrusion", -1000)  # horizon: 2 m within + 10 m cooldown + 30 s tolerance
    edge = ev("intrusion", -749)
    other_site = ev("intrusion", -10, site=OTHER)
    unused_type = ev("motion", -5)  # no rule is triggered by it
    fresh = ev("door_forced_open", -1)
    stored(db, old, edge, other_site, unused_type, fresh)
    service = worker(rule_dir, None, Clock())
    rebuild = SiteRebuild(db, service, clock=Clock())
    assert rebuild.horizon_s() == 120 + 600 + 30
    report = await rebuild(SITE)
    assert report.read == 2 and report.since == T0 - timedelta(seconds=750)
    events, truncated = load_site_events(db, SITE, T0, rebuild.type_horizons_s(), limit=1)
    assert [e.event_id for e in events] == [fresh.event_id] and truncated  # the newest kept


async def test_a_long_horizon_is_capped(db: Engine, rule_dir: Path) -> None:
    service = worker(rule_dir, None, Clock())
    assert SiteRebuild(db, service, max_horizon_s=60).horizon_s() == 60


async def test_the_replay_lets_the_loop_run_between_chunks(
    db: Engine, store: IncidentsRuntime, rule_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.cluster import rebuild as module

    monkeypatch.setattr(module, "REPLAY_CHUNK", 1)
    turns = 0
    seen_at: list[int] = []  # the loop's turn count at each chunk

    def replay(engine: Any, events: Any) -> Any:
        seen_at.append(turns)
        return replay_site(engine, events)

    monkeypatch.setattr(module, "replay_site", replay)

    async def count_turns() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    stored(db, ev("intrusion", 0), ev("door_forced_open", 30))
    clock = Clock(40)
    sink = Recording(store)
    counter = asyncio.create_task(count_turns())
    try:
        report = await SiteRebuild(db, worker(rule_dir, sink, clock), clock=clock)(SITE)
    finally:
        counter.cancel()
    assert (report.replayed, report.signals, report.delivered) == (2, 1, 1)
    assert len(seen_at) == 2 and seen_at[1] > seen_at[0]  # other tasks ran between chunks


OFFLINE = """
  - id: offline
    severity: P3
    category: device-health
    title: {zh: "设备离线", en: "Device offline"}
    condition:
      type: absence
      when: {kind: [access, perimeter]}
      for: 26h
      group_by: [device_id]
"""


async def test_absence_rules_are_rebuilt_from_each_devices_last_event(
    db: Engine, rule_dir: Path
) -> None:
    (rule_dir / "breach.yaml").write_text(RULES + OFFLINE, encoding="utf-8")
    hour = 3600.0
    too_old = ev("intrusion", -30 * hour)  # beyond 26 h + the 5 min cooldown + tolerance
    earlier, last = ev("intrusion", -20 * hour), ev("intrusion", -10 * hour)
    door = ev("door_forced_open", -2 * hour)
    stored(db, too_old, earlier, last, door)
    service = worker(rule_dir, None, Clock())
    rebuild = SiteRebuild(db, service, clock=Clock())
    assert rebuild.horizon_s() == 750  # the sequence's; the absence rule's is not replayed
    assert rebuild.absence_horizon_s() == 26 * hour + 300 + 30
    report = await rebuild(SITE)
    assert (report.last_heard, report.read, report.replayed) == (2, 2, 2)  # cam, door: last
    [offline] = [r for r in service.rules() if r.id == "offline"]
    assert offline.groups == 2 and service.engine.counters.events == 2
    assert await service.tick() == []  # neither device has been silent for 26 h


MOTION = """
rules:
  - id: motion_seen
    severity: P4
    category: intrusion
    title: {zh: "移动侦测", en: "Motion"}
    cooldown: 1h
    condition:
      type: match
      when: {kind: perimeter, type: motion}
"""


async def test_each_type_is_read_over_its_own_rules_horizon(db: Engine, rule_dir: Path) -> None:
    (rule_dir / "motion.yaml").write_text(MOTION, encoding="utf-8")
    motion = ev("motion", -3000)  # the motion rule's cooldown holds for an hour
    intrusion = ev("intrusion", -3000)  # the sequence looks back 12.5 minutes only
    stored(db, motion, intrusion)
    service = worker(rule_dir, None, Clock())
    rebuild = SiteRebuild(db, service, clock=Clock())
    assert rebuild.type_horizons_s() == {
        ("perimeter", "motion"): 3630,
        ("perimeter", "intrusion"): 750,
        ("access", "door_forced_open"): 750,
    }
    report = await rebuild(SITE)
    assert (report.read, report.replayed, report.signals) == (1, 1, 1)  # the motion signal
    assert service.engine.counters.events == 1


TIMERS = """
rules:
  - id: held_open
    severity: P3
    category: access
    title: {zh: "门未关", en: "Door held open"}
    condition:
      type: duration
      start: {kind: access, type: door_open}
      end: {kind: access, type: door_closed}
      for: 90s
      group_by: [device_id]
  - id: door_silent
    severity: P3
    category: device-health
    title: {zh: "门禁离线", en: "Door controller silent"}
    condition:
      type: absence
      when: {kind: access}
      for: 5m
      group_by: [device_id]
"""


def late_by(event: Event, seconds: float) -> Event:
    """``event`` as it arrives ``seconds`` after it happened (queued at the broker)."""
    return event.model_copy(update={"received_at": event.received_at + timedelta(seconds=seconds)})


async def test_timers_due_during_the_handover_wait_for_the_queued_messages(
    db: Engine, rule_dir: Path
) -> None:
    (rule_dir / "timers.yaml").write_text(TIMERS, encoding="utf-8")
    opened = ev("door_open", -80)  # held open past 90 s at t=10; silent past 5 min at t=220
    stored(db, opened)
    clock = Clock(0)
    service = worker(rule_dir, None, clock)
    await SiteRebuild(db, service, clock=clock, grace_s=60)(SITE)
    clock.t = 20
    assert await service.tick() == []  # due at t=10, held until t=60
    closed = late_by(ev("door_closed", 5), 20)  # closed during the handover, arrives at 25
    clock.t = 25
    assert await service.handle(closed) == []
    clock.t = 70
    assert await service.tick() == []  # it was closed in time: nothing to say


async def test_a_held_timer_fires_with_the_deadline_it_had(db: Engine, rule_dir: Path) -> None:
    (rule_dir / "timers.yaml").write_text(TIMERS, encoding="utf-8")
    opened = ev("door_open", -80)
    # the worker that never lost the site: fires at the deadline, t=10
    clock = Clock(-80)
    reference = worker(rule_dir, None, clock)
    await reference.handle(opened)
    clock.t = 10
    [expected] = await reference.tick()

    stored(db, opened)
    clock = Clock(0)
    service = worker(rule_dir, None, clock)
    await SiteRebuild(db, service, clock=clock, grace_s=60)(SITE)
    clock.t = 59
    assert await service.tick() == []
    clock.t = 61
    [fired] = await service.tick()  # no message came: the door is held open after all
    assert fired.rule_id == "held_open" and fired.signal_id == expected.signal_id


async def test_an_absence_due_during_the_handover_waits_too(db: Engine, rule_dir: Path) -> None:
    (rule_dir / "timers.yaml").write_text(TIMERS, encoding="utf-8")
    heard = ev("door_closed", -290)  # silent for 5 minutes at t=10
    clock = Clock(-290)
    reference = worker(rule_dir, None, clock)
    await reference.handle(heard)
    clock.t = 10
    [expected] = await reference.tick()

    stored(db, heard)
    clock = Clock(0)
    service = worker(rule_dir, None, clock)
    await SiteRebuild(db, service, clock=clock, grace_s=60)(SITE)
    clock.t = 20
    assert await service.tick() == []  # held until t=60
    clock.t = 61
    [fired] = await service.tick()
    assert fired.rule_id == "door_silent" and fired.signal_id == expected.signal_id
