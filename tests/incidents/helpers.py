"""Shared set-up for the incident tests: a migrated SQLite database with the demo grid,
a virtual clock, recording notifiers and signals like the rules engine makes them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from gateway.bus import EventBus
from gateway.config.sites import SiteRegistry, load_sites
from gateway.events import EventType
from gateway.incidents.runtime import IncidentsRuntime
from gateway.notify.base import Message, SendResult
from gateway.storage.db import make_engine, migrate
from rules.model import Category, Severity
from rules.signal import Signal, SignalEvent

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config"
T0 = datetime(2026, 5, 12, 2, 0, tzinfo=UTC)  # 10:00 in Asia/Shanghai


class FakeClock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Recorder:
    """A notifier that records messages; ``results`` (a list) scripts its answers."""

    def __init__(self, results: list[SendResult] | None = None, delay_s: float = 0.0) -> None:
        self.messages: list[Message] = []
        self.results = results or []
        self.delay_s = delay_s

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, message: Message) -> SendResult:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        self.messages.append(message)
        return self.results.pop(0) if self.results else SendResult.sent()

    def to(self, recipient: str) -> list[Message]:
        return [m for m in self.messages if m.recipient == recipient]


def registry() -> SiteRegistry:
    return load_sites(CONFIG / "sites")


def engine_at(tmp: Path) -> Engine:
    engine = make_engine(f"sqlite:///{tmp / 'lianfang.db'}")
    migrate(engine)
    return engine


def runtime(
    tmp: Path,
    clock: FakeClock,
    notifiers: dict[str, Recorder] | None = None,
    engine: Engine | None = None,
) -> IncidentsRuntime:
    """An incidents runtime on SQLite in ``tmp`` (or on ``engine``, migrated here)."""
    recorders = notifiers or {c: Recorder() for c in ("mqtt", "console", "sms", "voice")}
    if engine is not None:
        migrate(engine)
    return IncidentsRuntime(
        engine if engine is not None else engine_at(tmp),
        EventBus(),
        registry(),
        config_dir=CONFIG,
        data_dir=tmp,
        mqtt=None,
        clock=clock,
        rule_dir=CONFIG / "rules",
        notifiers=dict(recorders),  # type: ignore[arg-type]
        tick_s=3600,
    )


def panic_signal(
    device: str = "panic-6-102",
    household: str = "6-1-102",
    n: int = 1,
    *,
    kind: str = "new",
    state: str = "firing",
    severity: Severity = Severity.P1,
    at: datetime = T0,
) -> Signal:
    return Signal(
        signal_id=f"panic_button:device_id={device}:{n}",
        kind=kind,  # type: ignore[arg-type]
        state=state,  # type: ignore[arg-type]
        rule_id="panic_button",
        severity=severity,
        category=Category.PANIC,
        title_zh=f"一键报警：{household} 户按下报警按钮",
        title_en=f"Panic alarm pressed by household {household}",
        group_key=f"device_id={device}",
        events=[
            SignalEvent(
                event_id=f"lianfang:{device}:{n}",
                type=EventType.PANIC,
                device_id=device,
                occurred_at=at,
            )
        ],
        event_count=1,
        site="demo-compound",
        device_id=device,
        labels={"team": "police", "notify": "neighbours", "device.household": household},
        fired_at=at,
    )


def door_signal(n: int, device: str = "door-b2u1", at: datetime = T0) -> Signal:
    return Signal(
        signal_id=f"door_forced_open:device_id={device},door=-:{n}",
        kind="new",
        rule_id="door_forced_open",
        severity=Severity.P2,
        category=Category.ACCESS,
        title_zh="门被强行打开",
        title_en="Door forced open",
        group_key=f"device_id={device},door=-",
        events=[
            SignalEvent(
                event_id=f"e{n}", type=EventType.DOOR_FORCED_OPEN, device_id=device, occurred_at=at
            )
        ],
        event_count=1,
        site="demo-compound",
        device_id=device,
        labels={"team": "property"},
        fired_at=at,
    )
