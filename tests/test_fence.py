"""Virtual fence on synthetic video made in the test: one crossing gives exactly one event;
a static scene, lighting drift, a light switched on, sensor noise and an object outside the
zone give none."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from gateway.bus import EventBus
from gateway.config.sites import DeviceConfig, SiteConfig, SiteRegistry
from gateway.events import DeviceKind, Event, EventType
from gateway.evidence import CameraConfig, EvidenceStore, SnapshotService, StoredSnapshot
from gateway.fence import FenceConfig, FenceDetector, FenceHit, FenceService
from gateway.fence.service import fence_event_id

W, H = 640, 360
FPS = 10.0
# The middle third of the picture, from near the top to the bottom.
ZONE = [(0.35, 0.1), (0.65, 0.1), (0.65, 0.98), (0.35, 0.98)]
Frame = np.ndarray


def background() -> Frame:
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    base = 60 + 80 * x / W + 30 * np.sin(y / 23.0)
    img = np.dstack([base, base * 0.9 + 10, base * 0.8 + 20])
    cv2.rectangle(img, (50, 200), (150, 330), (40, 60, 90), -1)
    cv2.circle(img, (500, 100), 40, (200, 180, 160), -1)
    return img.astype(np.float32)


BACKGROUND = background()
# Sensor noise: a bank of unit-variance frames drawn at random (drawing fresh Gaussian noise
# for every 640×360 frame would make these tests slow without making them better).
NOISE_BANK = np.random.default_rng(99).standard_normal((24, H, W, 1), dtype=np.float32)


@dataclass
class Scene:
    """Frame ``i`` of a synthetic camera: background, optional moving object, lighting, noise."""

    frames: int = 100
    object_x: Callable[[int], float | None] = lambda i: None
    object_y: int = 150
    object_size: tuple[int, int] = (30, 70)
    gain: Callable[[int], float] = lambda i: 1.0
    offset: Callable[[int], float] = lambda i: 0.0
    noise: float = 4.0
    seed: int = 1
    rng: np.random.Generator = field(init=False)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def frame(self, i: int) -> Frame:
        img = BACKGROUND.copy()
        x = self.object_x(i)
        if x is not None:
            w, h = self.object_size
            cv2.rectangle(
                img, (int(x), self.object_y), (int(x) + w, self.object_y + h), (20, 20, 200), -1
            )
        img = img * np.float32(self.gain(i)) + np.float32(self.offset(i))
        if self.noise:
            img += NOISE_BANK[self.rng.integers(len(NOISE_BANK))] * np.float32(self.noise)
        return np.clip(img, 0, 255).astype(np.uint8)

    def __iter__(self) -> Iterator[Frame]:
        return (self.frame(i) for i in range(self.frames))


def walk(start: int, speed: float) -> Callable[[int], float | None]:
    """Enters from the left at frame ``start``, ``speed`` pixels per frame."""
    return lambda i: None if i < start else -40 + (i - start) * speed


def fence(**kw: Any) -> FenceConfig:
    # Half-width analysis keeps the suite fast; the crossing test and the service use 640.
    defaults = {"id": "north-wall", "camera": "cam-1", "zone": ZONE, "cooldown_s": 0}
    return FenceConfig(**{**defaults, "analysis_width": 320, **kw})


def hits(scene: Scene, config: FenceConfig | None = None) -> tuple[list[FenceHit], FenceDetector]:
    detector = FenceDetector(config or fence(), (W, H))
    found = [h for i, f in enumerate(scene) if (h := detector.process(f, i / FPS)) is not None]
    return found, detector


def test_object_crossing_the_zone_gives_exactly_one_event() -> None:
    found, detector = hits(Scene(object_x=walk(30, 10)), fence(analysis_width=640))
    assert len(found) == 1
    x, _, w, _ = found[0].bbox
    assert x >= 0.35 * W - 40 and x + w <= 0.65 * W + 40  # inside the zone
    assert detector.frames == 100 and detector.size == (W, H)


def test_static_scene_gives_none() -> None:
    assert hits(Scene())[0] == []


def test_lighting_drift_gives_none() -> None:
    darkening = Scene(gain=lambda i: 1.3 - 0.8 * i / 100)  # dusk: 1.3 → 0.5
    brightening = Scene(offset=lambda i: -40 + 100 * i / 100, seed=2)
    flicker = Scene(gain=lambda i: 1 + 0.15 * np.sin(i / 3), seed=3)
    for scene in (darkening, brightening, flicker):
        assert hits(scene)[0] == []


def test_lights_switched_on_gives_none() -> None:
    found, _ = hits(Scene(gain=lambda i: 0.7 if i < 60 else 1.4))
    assert found == []


def test_sensor_noise_gives_none() -> None:
    assert hits(Scene(noise=14.0))[0] == []


def test_object_outside_the_zone_gives_none() -> None:
    # Walks to and fro left of the zone...
    beside = Scene(object_x=lambda i: 40 + (i % 60) * 2 if i >= 30 else None, object_y=100)
    assert hits(beside)[0] == []
    # ...and right across the picture, but in the strip above the zone's top edge.
    above = Scene(object_x=walk(30, 10), object_y=2, object_size=(30, 28))
    assert hits(above)[0] == []


def test_object_smaller_than_min_area_gives_none() -> None:
    small = Scene(object_x=walk(30, 10), object_size=(8, 8))
    assert hits(small, fence(min_area_px=300))[0] == []


def test_two_crossings_two_events_unless_within_cooldown() -> None:
    once = walk(30, 10)
    twice = Scene(frames=200, object_x=lambda i: once(i % 100))
    assert len(hits(twice)[0]) == 2
    assert len(hits(twice, fence(cooldown_s=60))[0]) == 1


def test_zone_must_be_inside_the_picture() -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        FenceConfig(id="f", camera="c", zone=[(0, 0), (1.2, 0), (1, 1)])
    with pytest.raises(ValueError):
        FenceConfig(id="f", camera="c", zone=[(0, 0), (1, 1)])


# -- the service: a video file through OpenCV, a worker thread, the bus and the store ---------


def write_video(path: Path, scene: Scene) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), FPS, (W, H))
    for frame in scene:
        writer.write(frame)
    writer.release()
    return path


@dataclass
class RecordingSink:
    attached: list[tuple[str, StoredSnapshot]] = field(default_factory=list)

    async def attach(self, ref: str, snapshot: StoredSnapshot) -> None:
        self.attached.append((ref, snapshot))


async def test_service_publishes_one_intrusion_with_its_snapshot(tmp_path: Path) -> None:
    video = write_video(tmp_path / "crossing.avi", Scene(frames=100, object_x=walk(30, 10)))
    camera = CameraConfig(id="cam-1", stream=str(video))
    registry = SiteRegistry(
        [SiteConfig(id="demo", devices=[DeviceConfig(id="cam-1", kind=DeviceKind.PERIMETER)])]
    )
    sink = RecordingSink()
    evidence = SnapshotService([camera], EvidenceStore(tmp_path / "evidence"), sink=sink)
    await evidence.start()
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    sub = bus.subscribe("test", critical=True)
    config = fence(realtime=False, loop_files=False, zone_name="北墙", analysis_width=640)
    service = FenceService([config], [camera], bus, evidence=evidence, registry=registry)
    await service.start()
    try:
        await asyncio.wait_for(service.wait_idle(), 20)
        await asyncio.sleep(0.05)  # the sink runs on the loop after the worker scheduled it
        events: list[Event] = []
        while not sub.queue.empty():
            events.append(sub.queue.get_nowait())
    finally:
        await service.stop()
        await evidence.stop()
    assert len(events) == 1
    [event] = events
    assert event.type is EventType.INTRUSION and event.kind is DeviceKind.PERIMETER
    assert event.device_id == "cam-1" and event.site == "demo" and event.source == "fence"
    assert event.attributes.zone == "北墙"
    assert event.event_id == fence_event_id("north-wall", event.occurred_at)
    snapshot_id = event.attributes.extra["snapshot"]
    assert isinstance(snapshot_id, str)
    jpeg = evidence.store.read(snapshot_id)
    assert jpeg is not None
    picture = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert picture.shape == (H, W, 3)
    assert [(ref, s.id) for ref, s in sink.attached] == [(event.event_id, snapshot_id)]
    status = service.status["north-wall"]
    assert status.frames == 100 and status.events == 1 and not status.running
