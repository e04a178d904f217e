"""Shared outbox on PostgreSQL (issue 16 part 4): two workers' dispatchers on one database
send each notification exactly once, a claim left by a dead worker is taken again once it
lapses, and a passed acknowledgement deadline escalates once while both workers sweep.

(One incident per group key across workers: tests/incidents/test_one_incident_per_group.py.)
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from gateway.bus import EventBus
from gateway.incidents.runtime import IncidentsRuntime
from gateway.incidents.tables import incident_timeline, incidents
from gateway.notify import claims
from gateway.notify.dispatcher import CLAIM_S, record_attempt
from gateway.notify.tables import notifications
from gateway.storage.db import make_engine, migrate
from tests.conftest import postgres_database
from tests.incidents.helpers import CONFIG, FakeClock, Recorder, panic_signal, registry

pytestmark = pytest.mark.postgres
CHANNELS = ("mqtt", "console", "sms", "voice")


@pytest.fixture
def database_url() -> Iterator[str]:
    with postgres_database() as url:
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        yield url


class Worker:
    """One worker's incidents runtime: its own engine, writer thread and recorders."""

    def __init__(self, url: str, tmp: Path, clock: FakeClock, name: str) -> None:
        self.engine: Engine = make_engine(url)
        self.recorders = {c: Recorder() for c in CHANNELS}
        tmp.mkdir(parents=True, exist_ok=True)
        self.rt = IncidentsRuntime(
            self.engine,
            EventBus(),
            registry(),
            config_dir=CONFIG,
            data_dir=tmp,
            mqtt=None,
            clock=clock,
            rule_dir=CONFIG / "rules",
            notifiers=dict(self.recorders),  # type: ignore[arg-type]
            tick_s=3600,  # ticks by hand
            worker=name,
        )

    def sent_ids(self) -> list[int]:
        return [m.notification_id for r in self.recorders.values() for m in r.messages]

    async def settle(self) -> None:
        await self.rt.service.settled()
        await self.rt.dispatcher.drain()


@pytest.fixture
async def workers(database_url: str, tmp_path: Path) -> AsyncIterator[tuple[Worker, Worker]]:
    clock = FakeClock()
    a = Worker(database_url, tmp_path / "a", clock, "worker-a")
    b = Worker(database_url, tmp_path / "b", clock, "worker-b")
    await a.rt.start()  # one after the other: the first imports the grid
    await b.rt.start()
    try:
        yield a, b
    finally:
        for w in (a, b):
            await w.rt.stop()
            w.engine.dispose()


def rows(engine: Engine) -> list[tuple[int, str, str | None]]:
    n = notifications.c
    with engine.connect() as conn:
        return [
            (r.id, r.status, r.claimed_by)
            for r in conn.execute(select(n.id, n.status, n.claimed_by).order_by(n.id))
        ]


async def test_both_dispatchers_shared_on_postgresql(
    workers: tuple[Worker, Worker],
) -> None:
    a, b = workers
    assert a.rt.dispatcher.shared and b.rt.dispatcher.shared


async def test_two_dispatchers_deliver_each_notification_exactly_once(
    workers: tuple[Worker, Worker],
) -> None:
    """Worker A queues a panic's notifications and sends them at once; meanwhile both
    workers sweep the outbox (as their tickers would). Every row is sent once, by one."""
    a, b = workers
    clock: FakeClock = a.rt.clock  # type: ignore[assignment]
    emitting = asyncio.create_task(a.rt.emit(panic_signal()))
    for _ in range(5):  # race the sweeps against A's own sends
        await asyncio.gather(a.rt.dispatcher.tick(), b.rt.dispatcher.tick())
        await asyncio.sleep(0)
    await emitting
    clock.advance(1)  # anything queued with a group wait is due now
    for _ in range(3):
        await asyncio.gather(a.rt.dispatcher.tick(), b.rt.dispatcher.tick())
        await a.settle()
        await b.settle()
    stored = rows(a.engine)
    assert stored, "the panic queued notifications"
    assert {status for _, status, _ in stored} == {"sent"}
    assert all(claimed is None for _, _, claimed in stored)  # recording cleared the claims
    sent = Counter(a.sent_ids() + b.sent_ids())
    assert sorted(sent) == [nid for nid, _, _ in stored]
    assert set(sent.values()) == {1}


async def test_a_dead_workers_claim_is_taken_again_after_it_lapses(
    workers: tuple[Worker, Worker],
) -> None:
    """A committed its rows and claimed them, then died before sending (its dispatcher never
    runs). B does not touch them while the claims hold, and sends each once after."""
    a, b = workers
    clock: FakeClock = a.rt.clock  # type: ignore[assignment]
    a.rt.service.dispatcher = None  # A never hands its rows over: it "died" after commit
    await a.rt.emit(panic_signal())
    clock.advance(1)
    now = clock()
    ids = [nid for nid, _, _ in rows(a.engine)]
    assert ids
    for nid in ids:
        until = now + timedelta(seconds=CLAIM_S)
        assert claims.claim_one(a.engine, nid, "worker-a", now, until) == 0  # attempts so far
    await b.rt.dispatcher.tick()
    await b.settle()
    assert b.sent_ids() == []
    assert {claimed for _, _, claimed in rows(a.engine)} == {"worker-a"}
    clock.advance(CLAIM_S + 1)
    await b.rt.dispatcher.tick()
    await b.settle()
    await b.rt.dispatcher.tick()  # nothing left to take
    await b.settle()
    sent = Counter(b.sent_ids())
    assert [sent[nid] for nid in ids] == [1] * len(ids)  # (then their deadlines escalated)
    assert set(sent.values()) == {1}
    assert {status for _, status, _ in rows(a.engine)} == {"sent"}
    # the dead worker, were it to come back, records nothing over B's outcome
    assert not record_attempt(a.engine, ids[0], "retry", 1, clock(), clock(), "late", "worker-a")
    assert {status for _, status, _ in rows(a.engine)} == {"sent"}


async def test_a_passed_deadline_escalates_once_with_two_workers_sweeping(
    workers: tuple[Worker, Worker],
) -> None:
    a, b = workers
    clock: FakeClock = a.rt.clock  # type: ignore[assignment]
    await a.rt.emit(panic_signal())
    await a.settle()
    n = notifications.c
    with a.engine.connect() as conn:
        waiting = set(
            conn.execute(select(n.id).where(n.ack_required.is_(True), n.level == 0)).scalars()
        )
    assert waiting, "a P1 panic asks its responders to acknowledge"
    clock.advance(61)  # the P1 deadline (60 s) passed; nobody acknowledged
    for _ in range(3):
        await asyncio.gather(a.rt.dispatcher.tick(), b.rt.dispatcher.tick())
        await a.settle()
        await b.settle()
    t = incident_timeline.c
    with a.engine.connect() as conn:
        entries = [
            data["notification_id"]
            for (data,) in conn.execute(select(t.data).where(t.action == "escalate"))
        ]
        escalations = conn.execute(select(n.id).where(n.occasion == "escalation")).all()
    assert sorted(entries) == sorted(waiting)  # each passed deadline escalated once
    assert escalations
    sent = Counter(a.sent_ids() + b.sent_ids())
    assert set(sent.values()) == {1}


async def test_a_deadline_on_an_incident_no_longer_open_is_lifted_not_swept_again(
    workers: tuple[Worker, Worker],
) -> None:
    """The sweep hands a passed deadline over; the incident was verified behind its back
    (no lift): the escalation lifts the row instead of escalating, so no sweep finds it
    again."""
    a, b = workers
    clock: FakeClock = a.rt.clock  # type: ignore[assignment]
    await a.rt.emit(panic_signal())
    await a.settle()
    with a.engine.begin() as conn:
        conn.execute(update(incidents).values(stage="verified"))
    clock.advance(61)
    assert claims.due_deadlines(a.engine, clock())
    await b.rt.dispatcher.tick()
    await b.settle()
    assert claims.due_deadlines(a.engine, clock()) == []
    n = notifications.c
    with a.engine.connect() as conn:
        assert conn.execute(select(n.id).where(n.occasion == "escalation")).all() == []
