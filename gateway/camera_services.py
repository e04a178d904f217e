"""Camera services of a running gateway: evidence snapshots, virtual fences, live view.

Configured by ``config/cameras.yaml`` (``gateway.live.config.VideoConfig``); a missing file
means no cameras, and every part then stays idle.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from gateway.bus import EventBus
from gateway.config.sites import SiteRegistry
from gateway.evidence import EvidenceStore, SnapshotService, evidence_router
from gateway.fence import FenceService
from gateway.live import LiveService, live_router, load_video_config
from gateway.storage.writer import BatchWriter, WriteItem

MB = 1024 * 1024


class CameraServices:
    def __init__(
        self,
        cameras_file: Path,
        data_dir: Path,
        *,
        bus: EventBus,
        writer: BatchWriter,
        registry: SiteRegistry,
    ) -> None:
        self.video = load_video_config(cameras_file)
        evidence = self.video.evidence
        self.store = EvidenceStore(
            data_dir / "evidence",
            max_bytes=evidence.max_mb * MB,
            retention_days=evidence.retention_days,
        )
        self.snapshots = SnapshotService(
            self.video.cameras, self.store, registry=registry, config=evidence
        )
        self.fences = FenceService(
            self.video.fences,
            self.video.camera_map(),
            bus,
            evidence=self.snapshots,
            registry=registry,
            # The fence publishes to the bus itself; storing goes through the batch writer
            # like every other event (called on the fence's worker thread).
            on_event=lambda event, _snapshot: writer.submit(WriteItem(events=[event])),
        )
        self.live = LiveService(self.video.cameras, self.video.live)

    @property
    def routers(self) -> list[APIRouter]:
        return [evidence_router(self.store), live_router(self.live)]

    async def start(self) -> None:
        await self.snapshots.start()
        await self.fences.start()
        await self.live.start()

    async def stop(self) -> None:
        await self.live.stop()
        await self.fences.stop()
        await self.snapshots.stop()
