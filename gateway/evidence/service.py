"""``SnapshotService``: evidence for events and incidents, off the event path.

``capture`` returns a ``Snapshot`` or ``None`` and never raises; ``request`` is fire-and-forget
(capture, store, hand to the ``EvidenceSink``) and returns at once. Captures run under a small
concurrency limit; stream grabs run in a bounded thread pool with a deadline, so a hung
camera costs one worker thread for a while, never the event loop.

Which camera: the device itself when it is a camera (kind ``perimeter`` and listed in
``cameras``), else the device's linked ``camera`` in the site registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal, Protocol

import httpx
from pydantic import Field

from gateway.bus import EventBus, Subscription
from gateway.config.sites import SiteRegistry
from gateway.events import DeviceKind, Event, EventType, utcnow
from gateway.evidence.cameras import CameraConfig, Strict
from gateway.evidence.snapshot import (
    Snapshot,
    SnapshotError,
    encode_jpeg,
    fetch_http_snapshot,
    grab_stream_frame,
)
from gateway.evidence.store import EvidenceStore, StoredSnapshot

log = logging.getLogger(__name__)

DEFAULT_TRIGGERS = (
    EventType.INTRUSION,
    EventType.LINE_CROSSING,
    EventType.DOOR_FORCED_OPEN,
    EventType.DOOR_HELD_OPEN,
    EventType.TAMPER,
    EventType.VEHICLE_DENIED,
    EventType.ALARM_INPUT,
)


class EvidenceConfig(Strict):
    """``evidence:`` in ``cameras.yaml``."""

    enabled: bool = True
    max_mb: int = Field(2048, ge=1, description="Disk cap; the oldest unpinned go first")
    retention_days: float = Field(30, gt=0, description="Unpinned snapshots older are deleted")
    max_image_mb: float = Field(8, gt=0, le=64, description="Larger snapshots are refused")
    concurrency: int = Field(2, ge=1, le=16, description="Captures in flight at once")
    max_pending: int = Field(64, ge=1, le=10_000, description="Queued requests; more are dropped")
    prefer: Literal["snapshot_url", "stream"] = Field(
        "snapshot_url", description="Tried first; the other is the fallback"
    )
    jpeg_quality: int = Field(85, ge=30, le=100, description="For frames grabbed from streams")
    triggers: list[EventType] = Field(
        default_factory=lambda: list(DEFAULT_TRIGGERS),
        description="Event types that get a snapshot when the service watches the bus",
    )
    prune_interval_s: float = Field(3600, gt=0)


class EvidenceSink(Protocol):
    """Where stored evidence goes: the incidents store links it to ``ref`` (incident or
    event id). Called on the event loop; should be quick."""

    async def attach(self, ref: str, snapshot: StoredSnapshot) -> None: ...


@dataclass
class EvidenceStats:
    requested: int = 0
    captured: int = 0
    failed: int = 0
    dropped: int = 0
    no_camera: int = 0


class SnapshotService:
    def __init__(
        self,
        cameras: Iterable[CameraConfig],
        store: EvidenceStore,
        *,
        registry: SiteRegistry | None = None,
        config: EvidenceConfig | None = None,
        sink: EvidenceSink | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.cameras: Mapping[str, CameraConfig] = {c.id: c for c in cameras}
        self.store = store
        self.registry = registry
        self.config = config or EvidenceConfig()
        self.sink = sink
        self.stats = EvidenceStats()
        self._client = http_client
        self._own_client = http_client is None
        self._sem = asyncio.Semaphore(self.config.concurrency)
        self._pool = ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="evidence")
        self._tasks: set[asyncio.Task[StoredSnapshot | None]] = set()
        self._background: list[asyncio.Task[None]] = []
        self._sub: Subscription | None = None
        self._bus: EventBus | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()  # refs recently requested

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self, bus: EventBus | None = None) -> None:
        """Open the store; with ``bus``, snapshot every event whose type is a trigger."""
        await asyncio.to_thread(self.store.load)
        if self._client is None:
            # trust_env=False: no proxy from the environment; cameras are on the site LAN.
            self._client = httpx.AsyncClient(trust_env=False, follow_redirects=False)
        self._background.append(asyncio.create_task(self._prune_loop(), name="evidence-prune"))
        if bus is not None and self.config.enabled:
            self._bus = bus
            self._sub = bus.subscribe("evidence", maxsize=self.config.max_pending)
            self._background.append(asyncio.create_task(self._watch(self._sub), name="evidence"))

    async def stop(self) -> None:
        if self._sub is not None and self._bus is not None:
            self._bus.unsubscribe(self._sub)
        for task in [*self._background, *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._background, *self._tasks, return_exceptions=True)
        self._background.clear()
        if self._client is not None and self._own_client:
            await self._client.aclose()
            self._client = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- which camera ---------------------------------------------------------------------

    def camera_for(self, device_id: str) -> str | None:
        """The camera that sees ``device_id``: itself if it is a camera, else its link."""
        found = self.registry.device(device_id) if self.registry is not None else None
        if found is None:
            return device_id if device_id in self.cameras else None
        _, device = found
        if device.kind is DeviceKind.PERIMETER and device_id in self.cameras:
            return device_id
        if device.camera is not None and device.camera in self.cameras:
            return device.camera
        return device_id if device_id in self.cameras else None

    # -- capture --------------------------------------------------------------------------

    async def capture(self, camera_id: str, reason: str = "") -> Snapshot | None:
        """One JPEG from ``camera_id``, or None (unknown camera, every method failed).
        Never raises (except cancellation); failures are logged and counted."""
        camera = self.cameras.get(camera_id)
        if camera is None:
            self.stats.no_camera += 1
            return None
        async with self._sem:
            for method in self._methods(camera):
                try:
                    jpeg = await self._grab(camera, method)
                except SnapshotError as exc:
                    log.warning("evidence: %s %s snapshot failed: %s", camera_id, method, exc)
                    continue
                except Exception:
                    log.exception("evidence: %s %s snapshot failed", camera_id, method)
                    continue
                self.stats.captured += 1
                return Snapshot(camera_id, utcnow(), jpeg, method, reason)
        self.stats.failed += 1
        return None

    def request(
        self, ref: str, device_id: str, reason: str = "", *, pin: bool = True
    ) -> asyncio.Task[StoredSnapshot | None] | None:
        """Fire and forget, from the event loop: capture from the device's camera, store it,
        hand it to the sink under ``ref``. Returns the task, or None when there is no camera,
        ``ref`` was requested recently (redelivery) or too many captures are pending."""
        if not self.config.enabled:
            return None
        camera_id = self.camera_for(device_id)
        if camera_id is None:
            self.stats.no_camera += 1
            return None
        if ref in self._seen:
            return None
        self._seen[ref] = None
        while len(self._seen) > 4096:
            self._seen.popitem(last=False)
        if len(self._tasks) >= self.config.max_pending:
            self.stats.dropped += 1
            log.warning("evidence: %d captures pending, dropping %s", len(self._tasks), ref)
            return None
        self.stats.requested += 1
        task = asyncio.create_task(self.capture_and_store(ref, camera_id, reason, pin=pin))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def capture_and_store(
        self, ref: str, camera_id: str, reason: str = "", *, pin: bool = True
    ) -> StoredSnapshot | None:
        snapshot = await self.capture(camera_id, reason)
        if snapshot is None:
            return None
        return await self.keep(ref, snapshot, pin=pin)

    async def keep(
        self, ref: str, snapshot: Snapshot, *, pin: bool = True
    ) -> StoredSnapshot | None:
        """Store a snapshot taken elsewhere (the fence's triggering frame) and attach it."""
        try:
            stored = await asyncio.to_thread(self.store.save, snapshot, ref=ref, pin=pin)
        except (OSError, SnapshotError) as exc:
            log.warning("evidence: cannot store snapshot of %s: %s", snapshot.camera_id, exc)
            return None
        await self.attach(ref, stored)
        return stored

    async def attach(self, ref: str, stored: StoredSnapshot) -> None:
        """Hand stored evidence to the sink; a failing sink is logged, never raised."""
        if self.sink is None:
            return
        try:
            await self.sink.attach(ref, stored)
        except Exception:
            log.exception("evidence: sink failed to attach %s to %s", stored.id, ref)

    async def drain(self) -> None:
        """Wait for pending captures (tests, orderly shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- internals ------------------------------------------------------------------------

    def _methods(self, camera: CameraConfig) -> list[Literal["http", "stream"]]:
        methods: list[Literal["http", "stream"]] = []
        if camera.snapshot_url is not None:
            methods.append("http")
        if camera.stream is not None:
            methods.append("stream")
        if self.config.prefer == "stream":
            methods.reverse()
        return methods

    async def _grab(self, camera: CameraConfig, method: Literal["http", "stream"]) -> bytes:
        max_bytes = int(self.config.max_image_mb * 1024 * 1024)
        if method == "http":
            assert self._client is not None, "start() the service first"
            return await fetch_http_snapshot(self._client, camera, max_bytes=max_bytes)
        cancel = threading.Event()
        source = camera.stream_source()
        quality = self.config.jpeg_quality

        def work() -> bytes:
            return encode_jpeg(grab_stream_frame(source, camera.stream_timeout_s, cancel), quality)

        future = asyncio.get_running_loop().run_in_executor(self._pool, work)
        try:
            # OpenCV has its own open/read deadlines; this one covers everything else.
            return await asyncio.wait_for(future, camera.stream_timeout_s + 2)
        except TimeoutError:
            cancel.set()
            raise SnapshotError(
                f"stream grab timed out after {camera.stream_timeout_s:g}s"
            ) from None

    async def _watch(self, sub: Subscription) -> None:
        triggers = set(self.config.triggers)
        async for event in sub:
            # Events that bring their own evidence (the virtual fence) are not snapped again.
            if event.type in triggers and "snapshot" not in event.attributes.extra:
                self.on_event(event)

    def on_event(self, event: Event) -> None:
        """Snapshot for one event, attached under its ``event_id``; returns at once."""
        self.request(event.event_id, event.device_id, reason=event.type.value)

    async def _prune_loop(self) -> None:
        while True:
            with contextlib.suppress(OSError):
                removed = await asyncio.to_thread(self.store.prune)
                if removed:
                    log.info("evidence: retention removed %d snapshots", removed)
            await asyncio.sleep(self.config.prune_interval_s)
