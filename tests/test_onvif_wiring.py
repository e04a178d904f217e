"""The ONVIF manager wired as the runtime wires it: events to the bus and the batch writer,
quarantine records to the writer; both land in the database."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from device_adapters.onvif import HealthState, OnvifCameraManager
from gateway.bus import EventBus
from gateway.demo.camera_sim import SimCamera
from gateway.events import Event
from gateway.ingest.pipeline import QuarantineRecord
from gateway.storage.db import make_engine, migrate
from gateway.storage.writer import BatchWriter, WriteItem
from tests.support.onvif_sim import fast_config, wait_until


async def test_events_reach_bus_and_storage_and_unknown_topics_quarantine(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'onvif.db'}")
    migrate(engine)
    writer = BatchWriter(engine, interval_s=0.01)
    writer.start()
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    sub = bus.subscribe("test", critical=True)
    cam = SimCamera("cam-north")
    await cam.start()

    def emit_events(events: list[Event]) -> None:
        for event in events:
            bus.publish(event)
        writer.submit(WriteItem(events=list(events)))

    def emit_quarantine(record: QuarantineRecord) -> None:
        writer.submit(WriteItem(quarantined=record))

    mgr = OnvifCameraManager([fast_config(cam)], emit_events, emit_quarantine)
    await mgr.start()
    try:
        await wait_until(lambda: mgr.status()["cam-north"].state is HealthState.ONLINE)
        cam.inject_kind("intrusion")
        cam.inject("tns1:Vendor/Unknown", {"a": "1"}, {"b": "2"})
        seen = [await asyncio.wait_for(sub.get(), 10) for _ in range(2)]
    finally:
        await mgr.stop()
        await cam.stop()
        await asyncio.to_thread(writer.stop)
    assert [e.type.value for e in seen] == ["online", "intrusion"]
    with engine.connect() as conn:
        stored = conn.execute(text("select type from events order by received_at")).scalars()
        assert list(stored) == ["online", "intrusion"]
        reasons = conn.execute(text("select reason, device_id from quarantine")).all()
        assert [tuple(r) for r in reasons] == [("no_match", "cam-north")]
    engine.dispose()


def test_importing_the_adapter_leaves_root_logging_alone() -> None:
    code = (
        "import logging, device_adapters.onvif;"
        "r = logging.getLogger(); print(len(r.handlers), r.level)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", str(30)]  # no handler added, level still WARNING
