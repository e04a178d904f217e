"""RulesService: bus consumption, timers from the clock, hot reload, persisted state."""

from __future__ import annotations

import asyncio
import os
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from rules_helpers import DEFAULT_RULES, T0, at, ev

from gateway.bus import EventBus
from gateway.config import ConfigErrors
from rules.engine import EngineSettings
from rules.service import RulesService
from rules.sink import MemorySink


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def set(self, seconds: float) -> None:
        self.now = T0 + timedelta(seconds=seconds)


@pytest.fixture
def rule_dir(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES, target)
    return target


def make(rule_dir: Path, clock: FakeClock, state: Path | None = None) -> RulesService:
    return RulesService(rule_dir, clock=clock, sink=MemorySink(), state_dir=state, watch_every_s=0)


async def test_consumes_the_bus_and_delivers_to_the_sink(rule_dir: Path) -> None:
    sink = MemorySink()
    service = RulesService(rule_dir, clock=FakeClock(T0), sink=sink, tick_s=0.01)
    bus = EventBus(asyncio.get_running_loop())
    await service.start(bus)
    try:
        bus.publish(ev("panic", 0, "btn1", household="3-201"))
        for _ in range(200):
            if sink.signals:
                break
            await asyncio.sleep(0.01)
        assert [s.rule_id for s in sink.signals] == ["panic_button"]
    finally:
        await service.stop()


async def test_tick_fires_timers_from_the_clock(rule_dir: Path) -> None:
    clock = FakeClock(T0)
    service = make(rule_dir, clock)
    await service.handle(ev("heartbeat", 0, "door1", kind="access"))
    clock.set(299)
    assert await service.tick() == []
    clock.set(301)
    [s] = await service.tick()
    assert s.rule_id == "device_offline"
    [r] = [x for x in service.rules() if x.id == "device_offline"]
    assert r.last_fired_at == at(300) and r.stats.last_signal_id == s.signal_id


async def test_absence_timer_survives_a_restart(rule_dir: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    clock = FakeClock(T0)
    first = make(rule_dir, clock, state)
    await first.handle(ev("heartbeat", 0, "door1", kind="access", event_id="hb-1"))
    await first.handle(ev("door_open", 1, "door2", door="A"))
    clock.set(200)
    await first.stop()  # persists
    assert (state / "rules_state.json").exists()

    second = make(rule_dir, clock, state)
    assert second.restore()
    clock.set(250)
    assert [s.rule_id for s in await second.tick()] == ["door_held_open"]  # due at 91
    clock.set(299)
    assert await second.tick() == []
    clock.set(302)
    offline = await second.tick()
    assert [(s.rule_id, s.device_id) for s in offline] == [
        ("device_offline", "door1"),
        ("device_offline", "door2"),
    ]
    # a redelivered event from before the restart is still a duplicate
    assert await second.handle(ev("heartbeat", 0, "door1", kind="access", event_id="hb-1")) == []
    assert second.engine.counters.duplicates == 1


async def test_overdue_timers_wait_for_the_restart_grace(rule_dir: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    clock = FakeClock(T0)
    first = make(rule_dir, clock, state)
    await first.handle(ev("heartbeat", 0, "door1", kind="access"))
    first.persist()
    clock.set(1000)  # gateway was down longer than the absence period
    second = make(rule_dir, clock, state)
    second.restore()
    assert await second.tick() == []
    await second.handle(ev("heartbeat", 1010, "door1", kind="access"))  # queued message arrives
    clock.set(1061)
    assert await second.tick() == []
    clock.set(1311)
    assert [s.rule_id for s in await second.tick()] == ["device_offline"]


async def test_hot_reload_rejects_a_broken_file_and_keeps_running(rule_dir: Path) -> None:
    clock = FakeClock(T0)
    service = make(rule_dir, clock)
    await service.handle(ev("heartbeat", 0, "door1", kind="access"))
    before = len(service.rules())
    (rule_dir / "broken.yaml").write_text(
        "rules:\n  - id: bad\n    severity: P2\n    category: access\n"
        "    title: {zh: x, en: x}\n    condition: {type: match, when: {typo: 1}}\n",
        encoding="utf-8",
    )
    errors = service.reload()
    assert errors and "broken.yaml" in str(errors[0]) and "rule bad" in str(errors[0])
    assert "condition.when.typo" in str(errors[0])
    assert len(service.rules()) == before
    assert service.last_reload_errors == errors
    # the old rules still run, with their timers
    assert len(await service.handle(ev("door_forced_open", 5, "door1", door="A"))) == 1
    clock.set(306)
    assert [s.rule_id for s in await service.tick()] == ["device_offline"]


async def test_hot_reload_on_file_change_keeps_unchanged_state(rule_dir: Path) -> None:
    clock = FakeClock(T0)
    service = RulesService(rule_dir, clock=clock, watch_every_s=1)
    await service.handle(ev("heartbeat", 0, "door1", kind="access"))
    access = rule_dir / "access.yaml"
    access.write_text(
        access.read_text(encoding="utf-8").replace("severity: P2", "severity: P1"), encoding="utf-8"
    )
    os.utime(access, ns=(1, 1))  # make sure the signature changes even on coarse clocks
    clock.set(10)
    await service.tick()
    assert service.last_reload_errors == []
    [forced] = [r for r in service.rules() if r.id == "door_forced_open"]
    assert forced.severity == "P1"
    clock.set(301)
    assert [s.rule_id for s in await service.tick()] == ["device_offline"]  # state kept


def test_invalid_rules_at_start_raise(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("rules: [{id: x}]\n", encoding="utf-8")
    with pytest.raises(ConfigErrors):
        RulesService(tmp_path)


async def test_enable_disable_survive_restart(rule_dir: Path, tmp_path: Path) -> None:
    state = tmp_path / "state"
    clock = FakeClock(T0)
    first = make(rule_dir, clock, state)
    assert first.set_enabled("door_forced_open", False) is not None
    assert first.set_enabled("nope", False) is None
    first.persist()
    second = make(rule_dir, clock, state)
    second.restore()
    assert await second.handle(ev("door_forced_open", 0, "d", door="A")) == []
    assert second.reload() == []
    assert await second.handle(ev("door_forced_open", 1, "d", door="A")) == []


async def test_sink_failure_is_logged_not_fatal(rule_dir: Path) -> None:
    class Broken:
        async def emit(self, signal: object) -> None:
            raise RuntimeError("down")

    service = RulesService(rule_dir, clock=FakeClock(T0), sink=Broken(), settings=EngineSettings())
    assert len(await service.handle(ev("panic", 0, "b"))) == 1
    assert service.errors == 1
