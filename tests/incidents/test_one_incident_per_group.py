"""One open incident per group key, by constraint (issue 16, cluster mode): two gateways'
incident services on one database that both find no open incident of a group and both open
one end with exactly one incident holding both signals (PostgreSQL and a shared SQLite
file). A closed incident is not reopened while another holds its group, and a signal without
a site groups with the incident stored at its device's site."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, select

from gateway.bus import EventBus
from gateway.incidents import grouping
from gateway.incidents.lifecycle import Action, IllegalTransition, Stage
from gateway.incidents.runtime import IncidentsRuntime
from gateway.incidents.service import ActionInput
from gateway.incidents.tables import incident_signals, incidents
from gateway.storage.db import make_engine, migrate
from tests.conftest import postgres_database
from tests.incidents.helpers import (
    CONFIG,
    FakeClock,
    Recorder,
    door_signal,
    panic_signal,
    registry,
    runtime,
)

DIALECTS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=DIALECTS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database (SQLite: one file both gateways open)."""
    with ExitStack() as stack:
        if request.param == "postgres":
            url = stack.enter_context(postgres_database())
        else:
            url = f"sqlite:///{tmp_path / 'shared.db'}"
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        yield url


def gateway(url: str, tmp: Path, clock: FakeClock) -> tuple[IncidentsRuntime, Engine]:
    """One gateway worker's incidents: its own engine (connection pool) and writer thread."""
    engine = make_engine(url)
    rt = IncidentsRuntime(
        engine,
        EventBus(),
        registry(),
        config_dir=CONFIG,
        data_dir=tmp,
        mqtt=None,
        clock=clock,
        rule_dir=CONFIG / "rules",
        notifiers={c: Recorder() for c in ("mqtt", "console", "sms", "voice")},  # type: ignore[misc]
        tick_s=3600,
    )
    return rt, engine


def both_find_nothing_first(
    monkeypatch: pytest.MonkeyPatch,
) -> list[tuple[int, int | None]]:
    """Make the race certain: each writer thread's first look-up that finds no open incident
    waits until the other's has found none too; then both try to open one. Returns what
    each look-up found: (thread, incident id)."""
    real = grouping.find_open
    met = threading.Barrier(2, timeout=20)
    waited: set[int] = set()
    seen: list[tuple[int, int | None]] = []

    def racing(conn: Connection, key: grouping.GroupKey) -> Any:
        found = real(conn, key)
        me = threading.get_ident()
        seen.append((me, None if found is None else found.id))
        if found is None and me not in waited:
            waited.add(me)
            met.wait()
        return found

    monkeypatch.setattr(grouping, "find_open", racing)
    return seen


async def test_two_gateways_racing_on_one_group_make_one_incident(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    first, first_engine = gateway(database_url, tmp_path / "a", clock)
    second, second_engine = gateway(database_url, tmp_path / "b", clock)
    await first.start()  # one after the other: the first imports the grid
    await second.start()
    seen = both_find_nothing_first(monkeypatch)
    try:
        await asyncio.gather(first.emit(door_signal(1)), second.emit(door_signal(2)))
        with first_engine.connect() as conn:
            opened = conn.execute(
                select(incidents.c.id, incidents.c.signal_count, incidents.c.event_ids)
            ).all()
            signals = {
                row.signal_id: row.incident_id for row in conn.execute(select(incident_signals))
            }
    finally:
        await first.stop()
        await second.stop()
        first_engine.dispose()
        second_engine.dispose()
    # both writer threads looked and found no open incident before either opened one
    assert [found for _, found in seen[:2]] == [None, None]
    assert len({thread for thread, _ in seen[:2]}) == 2
    [(incident_id, signal_count, event_ids)] = opened
    assert signal_count == 2 and sorted(event_ids) == ["e1", "e2"]
    assert signals == {door_signal(1).signal_id: incident_id, door_signal(2).signal_id: incident_id}
    stats = [first.service.stats, second.service.stats]
    assert sorted((s.opened, s.grouped) for s in stats) == [(0, 1), (1, 0)]
    assert first.service.signals.failures == second.service.signals.failures == 0


@pytest.fixture
async def rt(tmp_path: Path) -> Any:
    r = runtime(tmp_path, FakeClock())
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


async def test_a_closed_incident_is_not_reopened_while_another_holds_its_group(
    rt: IncidentsRuntime,
) -> None:
    act: Callable[..., Any] = rt.service.act
    await rt.emit(door_signal(1))
    await act(1, ActionInput(Action.FALSE_ALARM, "p-property", "property_manager"))
    await rt.emit(door_signal(2))  # the group is free: a new incident
    with pytest.raises(IllegalTransition) as refused:
        await act(1, ActionInput(Action.REOPEN, "p-head-1", "grid_head", note="再查"))
    assert "incident 2 is open for the same alarm" in refused.value.reason
    await act(2, ActionInput(Action.FALSE_ALARM, "p-property", "property_manager"))
    assert await act(1, ActionInput(Action.REOPEN, "p-head-1", "grid_head", note="再查")) is (
        Stage.DISCOVERED
    )


async def test_a_signal_without_a_site_groups_with_its_devices_incident(
    rt: IncidentsRuntime,
) -> None:
    """The panic button's incident is stored at its compound; a later press whose signal
    names no site is placed there by its device and joins it."""
    await rt.emit(panic_signal(n=1))
    await rt.emit(panic_signal(n=2).model_copy(update={"site": None}))
    with rt.engine.connect() as conn:
        rows = conn.execute(select(incidents.c.site, incidents.c.signal_count)).all()
    assert [tuple(r) for r in rows] == [("demo-compound", 2)]
