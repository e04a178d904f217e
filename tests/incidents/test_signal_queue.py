"""The queue between rules and incident storage: the rules loop never waits for the database,
urgent signals go first, bursts of updates are merged, a busy database is retried."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from gateway.incidents.signal_queue import Queued, SignalQueue
from gateway.incidents.tables import incident_timeline, incidents
from rules.model import Severity
from rules.signal import Signal
from tests.incidents.helpers import FakeClock, door_signal, panic_signal, runtime


class Store:
    """Records what reaches storage; can be made slow, busy or broken."""

    def __init__(self) -> None:
        self.log: list[tuple[str, ...]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.busy_times = 0
        self.broken: set[str] = set()

    async def open(self, item: Queued) -> None:
        await self.gate.wait()
        if self.busy_times:
            self.busy_times -= 1
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        if item.signal.signal_id in self.broken:
            raise ValueError("bug")
        self.log.append(("open", item.signal.signal_id))

    async def updates(self, items: list[Queued]) -> None:
        await self.gate.wait()
        for item in items:
            s = item.signal
            self.log.append(
                ("update", s.signal_id, s.state, ",".join(e.event_id for e in s.events))
            )


def update(n: int, state: str = "firing", event: str = "") -> Signal:
    base = door_signal(1)
    events = [base.events[0].model_copy(update={"event_id": event or f"u{n}"})]
    return base.model_copy(
        update={"kind": "update", "state": state, "events": events, "event_count": n + 1}
    )


async def test_put_never_waits_for_storage_and_settled_does() -> None:
    store = Store()
    queue = SignalQueue(store.open, store.updates)
    store.gate.clear()  # storage stuck
    queue.put(door_signal(1), FakeClock()())
    assert queue.pending == 1 and store.log == []
    assert not await queue.settled(within_s=0.05)
    store.gate.set()
    assert await queue.settled(within_s=5)
    assert store.log == [("open", door_signal(1).signal_id)]
    await queue.close()


async def test_urgent_new_signals_go_before_others_and_updates_come_last() -> None:
    store = Store()
    queue = SignalQueue(store.open, store.updates)
    now = FakeClock()()
    store.gate.clear()
    queue.put(door_signal(1), now)  # taken by the worker at once, held at the gate
    await asyncio.sleep(0)
    queue.put(update(1), now)
    queue.put(door_signal(2), now)
    queue.put(panic_signal(n=7), now)
    store.gate.set()
    assert await queue.settled(within_s=5)
    assert [entry[:2] for entry in store.log] == [
        ("open", door_signal(1).signal_id),
        ("open", panic_signal(n=7).signal_id),  # P1 overtakes the queued P2
        ("open", door_signal(2).signal_id),
        ("update", door_signal(1).signal_id),
    ]
    await queue.close()


async def test_a_burst_of_updates_is_merged_but_state_changes_are_kept_in_order() -> None:
    store = Store()
    queue = SignalQueue(store.open, store.updates)
    now = FakeClock()()
    store.gate.clear()
    queue.put(door_signal(9), now)  # occupies the worker
    await asyncio.sleep(0)
    for n in range(1, 6):
        queue.put(update(n), now)
    queue.put(update(6, state="resolved"), now)
    queue.put(update(7, state="resolved"), now)
    store.gate.set()
    assert await queue.settled(within_s=5)
    sid = door_signal(1).signal_id
    assert store.log[1:] == [
        ("update", sid, "firing", "u1,u2,u3,u4,u5"),
        ("update", sid, "resolved", "u6,u7"),
    ]
    assert queue.merged == 5
    await queue.close()


async def test_busy_database_is_retried_and_a_broken_signal_does_not_stop_the_rest() -> None:
    store = Store()
    store.busy_times = 2
    store.broken = {door_signal(2).signal_id}
    queue = SignalQueue(store.open, store.updates)
    now = FakeClock()()
    for n in (1, 2, 3):
        queue.put(door_signal(n), now)
    assert await queue.settled(within_s=10)
    assert store.log == [("open", door_signal(1).signal_id), ("open", door_signal(3).signal_id)]
    assert (queue.retries, queue.failures) == (2, 1)
    await queue.close()


@pytest.mark.parametrize("n_updates", [40])
async def test_service_stores_merged_updates_on_the_incident(
    tmp_path: Path, n_updates: int
) -> None:
    clock = FakeClock()
    rt = runtime(tmp_path, clock)
    await rt.start()
    try:
        await rt.emit(panic_signal())  # opens the incident, stored
        sink = rt.sink
        for n in range(2, 2 + n_updates):  # a burst of repeats, faster than the database
            event = panic_signal(n=n).events[0]
            await sink.emit(
                panic_signal().model_copy(
                    update={"kind": "update", "events": [event], "event_count": n}
                )
            )
        assert await rt.service.settled(within_s=10)
        with rt.engine.connect() as conn:
            inc = conn.execute(select(incidents)).one()
            entries = (
                conn.execute(
                    select(incident_timeline.c.action).where(
                        incident_timeline.c.incident_id == inc.id
                    )
                )
                .scalars()
                .all()
            )
        assert inc.event_count == n_updates + 1
        assert len(inc.event_ids) == n_updates + 1  # every event attached, none lost
        # fewer timeline entries than updates: the burst was merged
        assert 1 <= entries.count("signal") < n_updates
        assert inc.severity == Severity.P1.value
    finally:
        await rt.stop()


async def _stored_after_updates(tmp_path: Path, batched: bool) -> tuple[list[object], list[tuple]]:
    """Open a panic and a door incident, then apply one list of updates to them (plus one for
    a signal nobody stored), batched or one at a time; return what each update wrote and the
    resulting incident rows and timeline."""
    clock = FakeClock()
    rt = runtime(tmp_path, clock)
    await rt.start()
    try:
        panic, door = panic_signal(), door_signal(1)
        await rt.emit(panic)
        await rt.emit(door)

        def update(signal: Signal, event_source: Signal, count: int, state: str) -> Queued:
            changed = signal.model_copy(
                update={
                    "kind": "update",
                    "events": event_source.events,
                    "event_count": count,
                    "state": state,
                    "explanation": f"{signal.signal_id} now {count}",
                }
            )
            return Queued(changed, clock())

        items = [
            update(panic, panic_signal(n=2), 2, "open"),
            update(door, door_signal(2), 2, "open"),
            update(door_signal(9, device="nowhere"), door_signal(9), 1, "open"),  # not stored
            update(panic, panic_signal(n=3), 3, "resolved"),
        ]
        service = rt.service
        if batched:
            written = await service.run_db(service._store_updates, items)
        else:
            written = []
            for item in items:
                written += await service.run_db(service._store_updates, [item])
        with rt.engine.connect() as conn:
            rows = [
                (r.id, list(r.event_ids), r.event_count, r.signal_state, r.severity)
                for r in conn.execute(select(incidents).order_by(incidents.c.id))
            ]
            timeline = [
                (t.incident_id, t.note, t.data["events"], t.data["state"])
                for t in conn.execute(
                    select(incident_timeline)
                    .where(incident_timeline.c.action == "signal")
                    .order_by(incident_timeline.c.id)
                )
            ]
        return [(w.incident_id, w.place) for w in written], [*rows, *timeline]
    finally:
        await rt.stop()


async def test_a_batch_of_updates_writes_what_one_at_a_time_would(tmp_path: Path) -> None:
    one_by_one = await _stored_after_updates(tmp_path / "single", batched=False)
    batched = await _stored_after_updates(tmp_path / "batch", batched=True)
    assert batched == one_by_one
    written, stored = batched
    assert [incident_id for incident_id, _ in written] == [1, 2, None, 1]
    panic_row = stored[0]
    assert panic_row[2:4] == (3, "resolved")  # the later update of the same incident wins
    assert len(panic_row[1]) == 3  # its events from both updates attached, in order
    assert [entry[0] for entry in stored[2:]] == [1, 2, 1]  # one timeline entry per update


class CountingStore(Store):
    """Also counts the update transactions (one ``updates`` call each)."""

    def __init__(self) -> None:
        super().__init__()
        self.update_calls: list[int] = []

    async def updates(self, items: list[Queued]) -> None:
        self.update_calls.append(len(items))
        await super().updates(items)


async def test_updates_alone_gather_into_one_transaction() -> None:
    store = CountingStore()
    queue = SignalQueue(store.open, store.updates, update_gather_s=2.0)  # ≫ the storm
    now = FakeClock()()
    for n in range(5):  # a storm: one update every 20 ms, states alternating (not merged)
        queue.put(update(n, "firing" if n % 2 else "resolved"), now)
        await asyncio.sleep(0.02)
    assert await queue.settled(within_s=5)
    assert store.update_calls == [5]
    await queue.close()


async def test_a_new_signal_ends_the_gathering_at_once_and_goes_first() -> None:
    store = CountingStore()
    queue = SignalQueue(store.open, store.updates, update_gather_s=600.0)
    now = FakeClock()()
    queue.put(update(1), now)
    await asyncio.sleep(0.05)
    queue.put(panic_signal(n=3), now)

    async def opened() -> None:
        while not store.log:  # noqa: ASYNC110 (the store has no event to wait on)
            await asyncio.sleep(0.005)

    await asyncio.wait_for(opened(), 30)  # long before the 600 s gathering ends
    assert store.log == [("open", panic_signal(n=3).signal_id)]
    assert store.update_calls == []  # the update still gathers
    queue.update_gather_s = 0.0  # and is stored after the next new signal
    queue.put(door_signal(2), now)
    assert await queue.settled(within_s=30)
    assert store.update_calls == [1]
    await queue.close()


async def test_new_signals_in_a_row_do_not_hold_updates_back_past_the_window() -> None:
    store = CountingStore()
    queue = SignalQueue(store.open, store.updates, update_gather_s=0.2)
    now = FakeClock()()
    queue.put(update(1), now)
    for n in range(20):  # a new signal every 50 ms for a second: each ends a wait
        await asyncio.sleep(0.05)
        queue.put(door_signal(100 + n), now)
        if store.update_calls:
            break
    assert store.update_calls == [1], "updates waited behind new signals beyond their window"
    await queue.close()
