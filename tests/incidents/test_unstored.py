"""A panic whose incident cannot be stored yet is told to the live channels at once, marked
未入库, and stored (and notified as usual) once the database is back
(gateway/incidents/unstored.py). Ordering only: the test decides when the store may go on."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from gateway.incidents.tables import incidents
from gateway.storage.outage import outage_for
from tests.incidents.helpers import FakeClock, Recorder, door_signal, panic_signal, runtime


def _occasions(rec: Recorder) -> list[tuple[str, object]]:
    return [(m.payload["occasion"], m.payload.get("stored", True)) for m in rec.messages]


async def _settle_tasks() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_panic_while_the_database_is_known_down_is_told_at_once(tmp_path: Path) -> None:
    mqtt, console = Recorder(), Recorder()
    rt = runtime(tmp_path, FakeClock(), {"mqtt": mqtt, "console": console, "sms": Recorder()})
    await rt.start()
    outage = outage_for(rt.engine)
    release = threading.Event()
    held = asyncio.ensure_future(rt.service.run_db(release.wait, 30))  # the store must wait
    try:
        outage.failed(OperationalError("SELECT 1", {}, Exception("connection refused")))
        await rt.service.emit(panic_signal())
        await rt.service.emit(panic_signal())  # the same signal again: told once
        await _settle_tasks()
        told = [m for m in mqtt.messages if m.payload["occasion"] == "unstored"]
        assert told, "told at once, before any store"
        assert {m.recipient_kind for m in told} >= {"police-desk"}
        first = told[0].payload
        assert (first["stored"], first["status_zh"], first["incident_id"]) == (
            False,
            "未入库",
            None,
        )
        assert first["ack_required"] is False and first["event_ids"] == ["lianfang:panic-6-102:1"]
        assert any(m.payload["occasion"] == "unstored" for m in console.messages)
        assert rt.service.unstored.waiting == 1
        assert rt.service.unstored.announced == 1
    finally:
        outage.recovered()
        release.set()
        await held
    try:
        assert await rt.service.settled(10)
        await rt.dispatcher.drain()
        assert rt.service.unstored.waiting == 0
        assert ("new", True) in _occasions(mqtt)  # the ordinary notification, stored
        with rt.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(incidents)).scalar_one() == 1
    finally:
        await rt.stop()


async def test_a_panic_stored_in_time_is_never_told_unstored(tmp_path: Path) -> None:
    mqtt = Recorder()
    rt = runtime(tmp_path, FakeClock(), {"mqtt": mqtt, "console": Recorder()})
    await rt.start()
    try:
        rt.service.unstored.after_s = 3600
        await rt.emit(panic_signal())  # stored: the watch ends with it
        assert rt.service.unstored._watching == {}
        await rt.dispatcher.drain()
        assert ("unstored", False) not in _occasions(mqtt)
        assert rt.service.unstored.announced == 0
    finally:
        await rt.stop()


async def test_a_slow_store_is_told_after_the_wait_and_only_p1_signals(tmp_path: Path) -> None:
    """A locked SQLite makes the write wait rather than fail: the timer tells the desk."""
    mqtt = Recorder()
    rt = runtime(tmp_path, FakeClock(), {"mqtt": mqtt, "console": Recorder()})
    await rt.start()
    rt.service.unstored.after_s = 0.0
    release = threading.Event()
    held = asyncio.ensure_future(rt.service.run_db(release.wait, 30))
    try:
        await rt.service.emit(door_signal(1))  # not P1: waits quietly
        await rt.service.emit(panic_signal())
        await _settle_tasks()
        told = {m.payload["signal_id"] for m in mqtt.messages if not m.payload.get("stored", 1)}
        assert told == {panic_signal().signal_id}
    finally:
        release.set()
        await held
    try:
        assert await rt.service.settled(10)
        assert rt.service.unstored.waiting == 0
    finally:
        await rt.stop()
