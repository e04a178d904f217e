"""``FenceService``: one worker thread per fence reads its camera with OpenCV and publishes
``intrusion`` events, each with the JPEG of the frame that triggered it.

The thread never touches the event loop directly: it stores the JPEG itself (the evidence
store is thread-safe), publishes through the thread-safe bus and schedules the evidence sink
on the loop. Streams reconnect with back-off; files play at their frame rate and loop
(demo), or run flat out once (tests, benchmark).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import cv2
import numpy as np

from gateway.bus import EventBus
from gateway.config.sites import SiteRegistry
from gateway.events import DeviceKind, Event, EventType, PerimeterAttributes, utcnow
from gateway.evidence.cameras import CameraConfig, redact
from gateway.evidence.service import SnapshotService
from gateway.evidence.snapshot import Snapshot, encode_jpeg, open_capture
from gateway.evidence.store import StoredSnapshot
from gateway.fence.config import FenceConfig
from gateway.fence.detector import FenceDetector, FenceHit, Frame

log = logging.getLogger(__name__)

SOURCE = "fence"
RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 30.0


def fence_event_id(fence_id: str, occurred_at: datetime) -> str:
    """Deterministic: the same fence at the same instant is the same event."""
    return f"fence:{fence_id}:{int(occurred_at.timestamp() * 1000)}"


def build_event(
    fence: FenceConfig,
    site: str,
    hit: FenceHit,
    occurred_at: datetime,
    snapshot_id: str | None,
) -> Event:
    x, y, w, h = hit.bbox
    extra: dict[str, str | int | float | bool | None] = {
        "fence": fence.id,
        "area_px": hit.area_px,
        "bbox": f"{x},{y},{w},{h}",
        "dwell_frames": hit.dwell_frames,
    }
    if snapshot_id is not None:
        extra["snapshot"] = snapshot_id
    return Event(
        event_id=fence_event_id(fence.id, occurred_at),
        occurred_at=occurred_at,
        received_at=occurred_at,
        site=site,
        device_id=fence.camera,
        kind=DeviceKind.PERIMETER,
        type=EventType.INTRUSION,
        attributes=PerimeterAttributes(
            zone=fence.zone_name or fence.id, label="object", phase="start", extra=extra
        ),
        source=SOURCE,
    )


@dataclass
class FenceStatus:
    fence_id: str
    camera: str
    running: bool = False
    connected: bool = False
    frames: int = 0
    events: int = 0
    scene_changes: int = 0
    reconnects: int = 0
    last_error: str | None = None


class FenceService:
    def __init__(
        self,
        fences: Iterable[FenceConfig],
        cameras: Mapping[str, CameraConfig] | Iterable[CameraConfig],
        bus: EventBus,
        *,
        evidence: SnapshotService | None = None,
        registry: SiteRegistry | None = None,
        default_site: str = "default",
        on_event: Callable[[Event, Snapshot], None] | None = None,
    ) -> None:
        cams = cameras if isinstance(cameras, Mapping) else {c.id: c for c in cameras}
        self.fences = [f for f in fences if f.enabled]
        for fence in self.fences:
            camera = cams.get(fence.camera)
            if camera is None or camera.stream is None:
                raise ValueError(f"fence {fence.id!r}: camera {fence.camera!r} has no stream")
        self.cameras = cams
        self.bus = bus
        self.evidence = evidence
        self.registry = registry
        self.default_site = default_site
        self.on_event = on_event
        self.status = {f.id: FenceStatus(f.id, f.camera) for f in self.fences}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop.clear()
        for fence in self.fences:
            thread = threading.Thread(
                target=self._run, args=(fence,), name=f"fence-{fence.id}", daemon=True
            )
            self._threads.append(thread)
            thread.start()

    async def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            await asyncio.to_thread(thread.join, 10.0)
        self._threads.clear()

    async def wait_idle(self) -> None:
        """Wait until every worker has ended (files that do not loop; tests)."""
        for thread in list(self._threads):
            await asyncio.to_thread(thread.join)

    def site_of(self, fence: FenceConfig) -> str:
        if fence.site is not None:
            return fence.site
        found = self.registry.device(fence.camera) if self.registry is not None else None
        return found[0].id if found is not None else self.default_site

    # -- worker thread --------------------------------------------------------------------

    def _run(self, fence: FenceConfig) -> None:
        status = self.status[fence.id]
        status.running = True
        camera = self.cameras[fence.camera]
        backoff = RECONNECT_MIN_S
        detector: FenceDetector | None = None
        try:
            while not self._stop.is_set():
                source = camera.stream_source()
                cap = open_capture(source, camera.stream_timeout_s)
                if not cap.isOpened():
                    status.connected = False
                    status.last_error = f"cannot open {redact(source)}"
                    log.warning("fence %s: %s", fence.id, status.last_error)
                    status.reconnects += 1
                    self._stop.wait(backoff)
                    backoff = min(backoff * 2, RECONNECT_MAX_S)
                    continue
                status.connected = True
                backoff = RECONNECT_MIN_S
                try:
                    detector = self._consume(fence, camera, cap, detector)
                finally:
                    cap.release()
                    status.connected = False
                if camera.is_file() and not fence.loop_files:
                    return
                if not camera.is_file():
                    status.reconnects += 1
                    self._stop.wait(backoff)
        except Exception as exc:
            status.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("fence %s: worker stopped", fence.id)
        finally:
            status.running = False

    def _consume(
        self,
        fence: FenceConfig,
        camera: CameraConfig,
        cap: cv2.VideoCapture,
        detector: FenceDetector | None,
    ) -> FenceDetector | None:
        status = self.status[fence.id]
        is_file = camera.is_file()
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        if not 1.0 <= fps <= 120.0:
            fps = 25.0
        pace = is_file and fence.realtime
        min_gap = 1.0 / fence.max_fps
        started = time.monotonic()
        last_t = -1e9
        index = 0
        # A looping file continues its clock where the previous pass ended.
        offset = detector.last_t if detector is not None and is_file else 0.0
        while not self._stop.is_set():
            ok, raw = cap.read()
            if not ok or raw is None:
                if not is_file:
                    status.last_error = "stream ended or read timed out"
                return detector
            frame: Frame = np.asarray(raw, dtype=np.uint8)
            index += 1
            # Stream time for files (deterministic), monotonic time for live streams.
            t = offset + index / fps if is_file else time.monotonic()
            if pace:
                delay = started + index / fps - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return detector
            if t - last_t < min_gap * 0.999 and (pace or not is_file):
                continue
            last_t = t
            if detector is None:
                detector = FenceDetector(fence, (frame.shape[1], frame.shape[0]))
            hit = detector.process(frame, t)
            status.frames = detector.frames
            status.scene_changes = detector.scene_changes
            if hit is not None:
                self._emit(fence, hit, frame)
                status.events += 1
        return detector

    def _emit(self, fence: FenceConfig, hit: FenceHit, frame: Frame) -> None:
        occurred = utcnow()
        snapshot = Snapshot(fence.camera, occurred, encode_jpeg(frame), "fence", "intrusion")
        event_id = fence_event_id(fence.id, occurred)
        stored: StoredSnapshot | None = None
        if self.evidence is not None:
            try:
                stored = self.evidence.store.save(snapshot, ref=event_id, pin=True)
            except OSError as exc:
                log.warning("fence %s: cannot store snapshot: %s", fence.id, exc)
        event = build_event(
            fence, self.site_of(fence), hit, occurred, stored.id if stored else None
        )
        # Each crossing is an event (console, API); the log would repeat it line by line.
        log.debug("fence %s: intrusion on %s (%d px)", fence.id, fence.camera, hit.area_px)
        self.bus.publish(event)
        if self.on_event is not None:
            self.on_event(event, snapshot)
        if stored is not None and self.evidence is not None and self._loop is not None:
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                asyncio.run_coroutine_threadsafe(
                    self.evidence.attach(event.event_id, stored), self._loop
                )
