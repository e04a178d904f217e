"""The write lane (gateway/storage/write_lane.py): who writes next to SQLite, and that the
batch writer and the incident service take turns on it. Ordering only, no wall clock: every
wait is on an event that the test sets."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import func, select

from gateway.storage import tables
from gateway.storage.db import make_engine, migrate
from gateway.storage.write_lane import OpenLane, WriteLane, lane_for
from gateway.storage.writer import BatchWriter, WriteItem
from tests.test_api import make_event

WAIT_S = 10  # a safety net for a broken lane; never reached when it works


def _waiting(lane: WriteLane, *, urgent: int = 0, routine: int = 0) -> None:
    """Block until that many writers wait for the lane."""
    with lane._cond:
        assert lane._cond.wait_for(
            lambda: lane._urgent_waiting >= urgent and lane._routine_waiting >= routine, WAIT_S
        )


def _enter(lane: WriteLane, way: str, order: list[str], name: str) -> threading.Thread:
    def run() -> None:
        with getattr(lane, way)():
            order.append(name)

    t = threading.Thread(target=run)
    t.start()
    return t


def test_an_urgent_writer_goes_before_a_routine_one_that_waited_longer() -> None:
    lane = WriteLane()
    order: list[str] = []
    with lane.routine():  # the batch writer's transaction under way
        routine = _enter(lane, "routine", order, "next batch")
        _waiting(lane, routine=1)
        urgent = _enter(lane, "urgent", order, "incident")
        _waiting(lane, urgent=1, routine=1)
    for t in (routine, urgent):
        t.join(WAIT_S)
    assert order == ["incident", "next batch"]


def test_writers_never_hold_the_lane_together() -> None:
    lane = WriteLane()
    inside = 0
    most = 0
    guard = threading.Lock()

    def write(way: str) -> None:
        nonlocal inside, most
        for _ in range(200):
            with getattr(lane, way)():
                with guard:
                    inside += 1
                    most = max(most, inside)
                with guard:
                    inside -= 1

    threads = [threading.Thread(target=write, args=(w,)) for w in ("urgent", "routine") * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S)
    assert most == 1
    assert lane.urgent_turns == lane.routine_turns == 400


def test_a_routine_writer_goes_after_max_yields_urgent_turns() -> None:
    """A storm of incident writes cannot stop event storage for good."""
    lane = WriteLane(max_yields=2)
    order: list[str] = []
    inside = {name: threading.Event() for name in ("u1", "u2", "u3")}
    leave = {name: threading.Event() for name in ("u1", "u2", "u3")}

    def hold(name: str) -> None:
        with lane.urgent():
            order.append(name)
            inside[name].set()
            assert leave[name].wait(WAIT_S)

    def start(name: str) -> threading.Thread:
        t = threading.Thread(target=hold, args=(name,))
        t.start()
        return t

    threads = []
    with lane.urgent():
        threads.append(_enter(lane, "routine", order, "batch"))
        _waiting(lane, routine=1)
        threads.append(start("u1"))
        _waiting(lane, urgent=1, routine=1)
    assert inside["u1"].wait(WAIT_S)  # first urgent turn the batch lets go first
    threads.append(start("u2"))
    _waiting(lane, urgent=1, routine=1)
    leave["u1"].set()
    assert inside["u2"].wait(WAIT_S)  # second
    threads.append(start("u3"))
    _waiting(lane, urgent=1, routine=1)
    leave["u2"].set()  # two turns yielded: the batch goes before u3
    leave["u3"].set()
    for t in threads:
        t.join(WAIT_S)
    assert order == ["u1", "u2", "batch", "u3"]


def test_the_lane_is_reentrant_within_a_thread() -> None:
    lane = WriteLane()
    with lane.urgent(), lane.urgent(), lane.routine():
        assert lane.busy
    assert not lane.busy


def test_one_lane_per_engine_and_none_for_postgresql(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    other = make_engine(f"sqlite:///{tmp_path / 'b.db'}")
    pg = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    assert lane_for(engine) is lane_for(engine)
    assert lane_for(engine) is not lane_for(other)
    assert isinstance(lane_for(pg), OpenLane)
    with lane_for(pg).urgent(), lane_for(pg).routine():  # never waits
        pass


def test_the_batch_writer_waits_while_an_incident_write_holds_the_lane(tmp_path: Path) -> None:
    """The writer commits its batch only once the urgent writer is done, and acknowledges
    only after its commit."""
    engine = make_engine(f"sqlite:///{tmp_path / 'g.db'}")
    migrate(engine)
    lane = lane_for(engine)
    w = BatchWriter(engine, batch_size=10, interval_s=0.0)
    acked: list[object] = []
    acked_event = threading.Event()

    def acknowledge(tokens: list[object]) -> None:
        acked.extend(tokens)
        acked_event.set()

    w.acknowledge = acknowledge
    w.start()
    try:
        with lane.urgent():
            w.submit(WriteItem([make_event(1)], ack="m1"))
            _waiting(lane, routine=1)  # the writer is at the lane, its batch not written
            with engine.connect() as conn:
                count = select(func.count()).select_from(tables.events)
                assert conn.execute(count).scalar_one() == 0
            assert acked == []
        assert acked_event.wait(WAIT_S)
        assert acked == ["m1"]
        with engine.connect() as conn:
            assert conn.execute(count).scalar_one() == 1
        assert lane.routine_waits >= 1
    finally:
        w.stop()
        engine.dispose()
