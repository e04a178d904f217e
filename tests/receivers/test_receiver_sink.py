"""ReceiverSink: events reach the bus and the writer; ``store`` returns once they are
committed, and for a panic only once the rules/incidents have settled it."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.bus import EventBus
from gateway.events import Event
from gateway.ingest.reasons import Reason
from gateway.receivers.sink import ReceiverSink
from gateway.storage import tables
from gateway.storage.db import make_engine, migrate
from gateway.storage.writer import BatchWriter


def event(event_id: str, type_: str) -> Event:
    now = datetime.now(UTC)
    return Event(event_id=event_id, occurred_at=now, received_at=now, site="s", device_id="panel-1",
                 kind="alarm", type=type_)  # type: ignore[arg-type]  # fmt: skip


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[BatchWriter]:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate(engine)
    w = BatchWriter(engine, interval_s=0.05)
    w.start()
    yield w
    w.stop()
    engine.dispose()


def count(writer: BatchWriter) -> int:
    with writer.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(tables.events)).scalar_one())


async def test_store_returns_after_commit_and_publishes(writer: BatchWriter) -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    sub = bus.subscribe("test", critical=True)
    sink = ReceiverSink(bus, writer)
    assert await sink.store([event("e1", "heartbeat")], timeout_s=5)
    assert count(writer) == 1  # committed when store returned
    assert (await asyncio.wait_for(sub.get(), 1)).event_id == "e1"


async def test_panic_waits_for_settlement(writer: BatchWriter) -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    sink = ReceiverSink(bus, writer)
    task = asyncio.create_task(sink.store([event("p1", "panic")], timeout_s=5))
    await asyncio.sleep(0.4)  # committed long since (50 ms batches), but not settled
    assert count(writer) == 1 and not task.done()
    sink.gate.settled(["p1"])  # the incident service stored the signal carrying it
    assert await asyncio.wait_for(task, 2)


async def test_store_times_out_without_settlement(writer: BatchWriter) -> None:
    sink = ReceiverSink(EventBus(), writer)
    assert not await sink.store([event("p2", "panic")], timeout_s=0.3)


async def test_quarantine_and_unregistered_panic(writer: BatchWriter) -> None:
    sink = ReceiverSink(EventBus(), writer, quarantine_raw_bytes=8)
    sink.quarantine(
        source="sia-dc09/tcp/x",
        reason=Reason.BAD_CRC,
        detail="d",
        device_id=None,
        raw=b"0123456789",
    )
    assert not await sink.unregistered_panic(
        source="sia", device_id="sia:9999", detail="1120", raw=b"x"
    )
    assert writer.flush()
    with writer.engine.connect() as conn:
        got = conn.execute(
            select(tables.quarantine.c.reason, tables.quarantine.c.raw, tables.quarantine.c.size)
        ).all()
    assert [(r.reason, bytes(r.raw), r.size) for r in got] == [
        ("bad_crc", b"01234567", 10),
        ("unknown_device", b"x", 1),
    ]
