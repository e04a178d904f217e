"""Camera services of a running gateway: ONVIF events, evidence snapshots, virtual fences and
live view.

Configured by ``config/onvif.yaml`` (event sources, ``device_adapters.onvif``) and
``config/cameras.yaml`` (streams, snapshots, fences, live view: ``gateway.live.config``); a
missing file means none of that kind, and the part stays idle.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from device_adapters.onvif import OnvifCameraManager, load_cameras
from gateway.bus import EventBus
from gateway.config.sites import SiteRegistry
from gateway.events import Event
from gateway.evidence import EvidenceStore, SnapshotService
from gateway.fence import FenceService
from gateway.ingest.pipeline import QuarantineRecord
from gateway.live import LiveService, load_video_config

MB = 1024 * 1024


class CameraServices:
    def __init__(
        self,
        cameras_file: Path,
        onvif_file: Path,
        data_dir: Path,
        *,
        bus: EventBus,
        registry: SiteRegistry,
        store: Callable[[list[Event]], None],
        ingest: Callable[[list[Event]], None],
        quarantine: Callable[[QuarantineRecord], None],
    ) -> None:
        """``store`` writes events; ``ingest`` publishes and stores events like MQTT ones; ``quarantine`` stores a
        record of what could not become an event."""
        onvif = load_cameras(onvif_file).cameras if onvif_file.is_file() else []
        zones = {d.id: d.zone for site in registry.sites.values() for d in site.devices}
        self.onvif = OnvifCameraManager(onvif, ingest, quarantine, zones=zones)
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
            # The fence publishes to the bus itself; store its events like every other one
            # (called on the fence's worker thread: the writer's submit is thread-safe).
            on_event=lambda event, _snapshot: store([event]),
        )
        self.live = LiveService(self.video.cameras, self.video.live)

    async def start(self) -> None:
        await self.snapshots.start()
        await self.fences.start()
        await self.live.start()
        await self.onvif.start()

    async def stop(self) -> None:
        await self.onvif.stop()
        await self.live.stop()
        await self.fences.stop()
        await self.snapshots.stop()
