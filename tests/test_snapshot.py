"""Evidence snapshots: HTTP (digest/basic) with size, type and time bounds; stream frames with
OpenCV; the on-disk store's cap and retention; the service that never raises; the routes."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine

from gateway.api.app import create_app
from gateway.bus import EventBus
from gateway.config.sites import DeviceConfig, SiteConfig, SiteRegistry
from gateway.events import DeviceKind, Event, EventType
from gateway.evidence import (
    CameraConfig,
    EvidenceStore,
    Snapshot,
    SnapshotError,
    SnapshotService,
    StoredSnapshot,
)
from gateway.evidence import routes as evidence_routes
from gateway.evidence.snapshot import JPEG_MAGIC, fetch_http_snapshot, grab_stream_frame
from gateway.health import BrokerHealth, HealthReport
from tests.support.auth import trusted

USER, PASSWORD, REALM = "admin", "s3cret-pw", "IP Camera(C1234)"
T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def jpeg(width: int = 64, height: int = 48, value: int = 128) -> bytes:
    img = np.full((height, width, 3), value, np.uint8)
    cv2.rectangle(img, (4, 4), (20, 20), (0, 0, 255), -1)
    ok, buf = cv2.imencode(".jpg", img)
    assert ok
    return bytes(buf.tobytes())


IMAGE = jpeg()


def _digest_ok(request: httpx.Request) -> bool:
    """Check an RFC 7616 (MD5, qop=auth) Authorization header as a camera would."""
    header = request.headers.get("authorization", "")
    if not header.startswith("Digest "):
        return False
    parts = dict(re.findall(r'(\w+)="?([^",]+)"?', header[7:]))
    md5 = lambda s: hashlib.md5(s.encode()).hexdigest()  # noqa: E731
    ha1 = md5(f"{USER}:{REALM}:{PASSWORD}")
    ha2 = md5(f"{request.method}:{parts.get('uri', '')}")
    expected = md5(f"{ha1}:{parts['nonce']}:{parts['nc']}:{parts['cnonce']}:auth:{ha2}")
    return parts.get("username") == USER and parts.get("response") == expected


def camera_handler(
    *, scheme: str = "digest", body: bytes = IMAGE, chunked: bool = False
) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        if scheme == "digest" and not _digest_ok(request):
            challenge = f'Digest realm="{REALM}", qop="auth", nonce="4e6f6e6365", algorithm=MD5'
            return httpx.Response(401, headers={"WWW-Authenticate": challenge})
        if (
            scheme == "basic"
            and request.headers.get("authorization") != httpx.BasicAuth(USER, PASSWORD)._auth_header
        ):
            return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="cam"'})
        if chunked:  # no Content-Length: the size cap must hold while streaming

            async def chunks() -> AsyncIterator[bytes]:
                for i in range(0, len(body), 1024):
                    yield body[i : i + 1024]

            return httpx.Response(200, content=chunks())
        return httpx.Response(200, content=body, headers={"Content-Type": "image/jpeg"})

    return handle


def cam(**kw: Any) -> CameraConfig:
    base: dict[str, Any] = {
        "id": "cam-1",
        "snapshot_url": "http://camera.test/onvif-http/snapshot?Profile_1",
        "username": USER,
        "password_env": "TEST_CAM_PASSWORD",
    }
    return CameraConfig(**{**base, **kw})


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_CAM_PASSWORD", PASSWORD)


# -- HTTP snapshot --------------------------------------------------------------------


async def test_http_snapshot_with_digest_auth() -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(camera_handler())) as client:
        assert await fetch_http_snapshot(client, cam()) == IMAGE


async def test_http_snapshot_with_basic_auth() -> None:
    handler = camera_handler(scheme="basic")
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        assert await fetch_http_snapshot(client, cam(auth="basic")) == IMAGE


async def test_http_snapshot_wrong_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_CAM_PASSWORD", "wrong")
    async with httpx.AsyncClient(transport=httpx.MockTransport(camera_handler())) as client:
        with pytest.raises(SnapshotError, match="HTTP 401"):
            await fetch_http_snapshot(client, cam())


@pytest.mark.parametrize("chunked", [False, True])
async def test_http_snapshot_over_the_size_cap_is_refused(chunked: bool) -> None:
    big = IMAGE + b"\0" * 20_000
    handler = camera_handler(body=big, chunked=chunked)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(SnapshotError, match="larger than"):
            await fetch_http_snapshot(client, cam(), max_bytes=10_000)


async def test_http_snapshot_that_is_not_a_jpeg_is_refused() -> None:
    handler = camera_handler(body=b"<html>login</html>")
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(SnapshotError, match="not a JPEG"):
            await fetch_http_snapshot(client, cam())


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """A TCP server on loopback that accepts and never answers (a hung camera)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        for w in held:
            w.close()
        server.close()


async def test_http_snapshot_times_out(silent_server: int) -> None:
    camera = cam(snapshot_url=f"http://127.0.0.1:{silent_server}/snap.jpg", snapshot_timeout_s=0.3)
    async with httpx.AsyncClient(trust_env=False) as client:
        with pytest.raises(SnapshotError, match="timed out"):
            await fetch_http_snapshot(client, camera)


# -- stream frames --------------------------------------------------------------------


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ten-frame Motion-JPEG "camera" written in the test."""
    path = tmp_path_factory.mktemp("snap") / "cam.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (640, 360))
    rng = np.random.default_rng(7)
    for _ in range(10):
        writer.write(rng.integers(0, 255, (360, 640, 3), dtype=np.uint8))
    writer.release()
    return path


def test_frame_from_a_video_file(video: Path) -> None:
    frame = grab_stream_frame(str(video), 5.0)
    assert frame.shape == (360, 640, 3) and frame.std() > 10


async def test_stream_that_never_answers_gives_none_not_an_exception(
    tmp_path: Path, silent_server: int
) -> None:
    camera = CameraConfig(
        id="cam-rtsp", stream=f"rtsp://127.0.0.1:{silent_server}/ch1", stream_timeout_s=0.5
    )
    service = SnapshotService([camera], EvidenceStore(tmp_path / "evidence"))
    await service.start()
    try:
        assert await service.capture("cam-rtsp", "test") is None
        assert service.stats.failed == 1
    finally:
        await service.stop()


# -- the store ------------------------------------------------------------------------


def snap(minute: int, camera: str = "cam-1", size: int = 0) -> Snapshot:
    data = IMAGE + b"\0" * size
    return Snapshot(camera, T0 + timedelta(minutes=minute), data, "http", "test")


def test_store_size_cap_evicts_oldest_unpinned(tmp_path: Path) -> None:
    each = len(IMAGE) + 1000
    store = EvidenceStore(tmp_path, max_bytes=each * 3 + 10)
    pinned = store.save(snap(0, size=1000), ref="inc-1", pin=True)
    old = store.save(snap(1, size=1000))
    store.save(snap(2, size=1000))
    store.save(snap(3, size=1000))  # over the cap: the oldest unpinned goes, not the pinned
    assert store.get(old.id) is None and not list(tmp_path.rglob(f"{old.id}.*"))
    assert store.get(pinned.id) is not None and store.read(pinned.id) == IMAGE + b"\0" * 1000
    assert store.total_bytes <= store.max_bytes and len(store) == 3
    assert store.evicted == 1


def test_store_retention_and_reload_from_disk(tmp_path: Path) -> None:
    now = [T0]
    store = EvidenceStore(tmp_path, retention_days=7, clock=lambda: now[0])
    old = store.save(snap(0))
    kept = store.save(snap(0, camera="cam 2/../x"), ref="inc-9", pin=True)  # odd id is slugged
    fresh = store.save(snap(60 * 24 * 6))
    now[0] = T0 + timedelta(days=8)
    assert store.prune() == 1
    again = EvidenceStore(tmp_path, retention_days=7)
    again.load()
    assert again.get(old.id) is None
    assert again.get(fresh.id) == fresh
    assert again.for_ref("inc-9") == [kept]
    assert again.read(kept.id) == IMAGE
    assert all(p.resolve().is_relative_to(tmp_path.resolve()) for p in tmp_path.rglob("*"))


def test_store_refuses_non_jpeg(tmp_path: Path) -> None:
    with pytest.raises(SnapshotError):
        EvidenceStore(tmp_path).save(Snapshot("c", T0, b"GIF89a", "http"))


# -- the service ----------------------------------------------------------------------


@dataclass
class RecordingSink:
    attached: list[tuple[str, StoredSnapshot]] = field(default_factory=list)
    fail: bool = False

    async def attach(self, ref: str, snapshot: StoredSnapshot) -> None:
        if self.fail:
            raise RuntimeError("incident store is down")
        self.attached.append((ref, snapshot))


REGISTRY = SiteRegistry(
    [
        SiteConfig(
            id="s1",
            devices=[
                DeviceConfig(id="cam-1", kind=DeviceKind.PERIMETER),
                DeviceConfig(id="door-1", kind=DeviceKind.ACCESS, camera="cam-file"),
                DeviceConfig(id="door-2", kind=DeviceKind.ACCESS),
                DeviceConfig(id="fence-sensor", kind=DeviceKind.PERIMETER, camera="cam-1"),
            ],
        )
    ]
)


@pytest.fixture
async def service(
    tmp_path: Path, video: Path
) -> AsyncIterator[tuple[SnapshotService, RecordingSink]]:
    sink = RecordingSink()
    client = httpx.AsyncClient(transport=httpx.MockTransport(camera_handler()))
    cameras = [cam(), CameraConfig(id="cam-file", stream=str(video))]
    svc = SnapshotService(
        cameras,
        EvidenceStore(tmp_path / "evidence"),
        registry=REGISTRY,
        sink=sink,
        http_client=client,
    )
    await svc.start()
    try:
        yield svc, sink
    finally:
        await svc.stop()
        await client.aclose()


def test_which_camera(service: tuple[SnapshotService, RecordingSink]) -> None:
    svc, _ = service
    assert svc.camera_for("cam-1") == "cam-1"  # a perimeter camera snaps itself
    assert svc.camera_for("door-1") == "cam-file"  # a door uses its linked camera
    assert svc.camera_for("fence-sensor") == "cam-1"  # a perimeter sensor with a camera
    assert svc.camera_for("door-2") is None
    assert svc.camera_for("unknown") is None


async def test_capture_http_and_stream_with_capture_time(
    service: tuple[SnapshotService, RecordingSink],
) -> None:
    svc, _ = service
    before = datetime.now(UTC)
    http = await svc.capture("cam-1", "door_forced_open")
    stream = await svc.capture("cam-file", "door_forced_open")
    assert http is not None and http.method == "http" and http.jpeg == IMAGE
    assert stream is not None and stream.method == "stream" and stream.jpeg.startswith(JPEG_MAGIC)
    assert before <= http.captured_at <= datetime.now(UTC)
    assert await svc.capture("no-such-camera") is None


async def test_http_failure_falls_back_to_the_stream(
    tmp_path: Path, video: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_CAM_PASSWORD", "wrong")
    client = httpx.AsyncClient(transport=httpx.MockTransport(camera_handler()))
    svc = SnapshotService([cam(stream=str(video))], EvidenceStore(tmp_path), http_client=client)
    await svc.start()
    try:
        got = await svc.capture("cam-1")
        assert got is not None and got.method == "stream"
    finally:
        await svc.stop()
        await client.aclose()


async def test_request_stores_and_attaches_once_per_ref(
    service: tuple[SnapshotService, RecordingSink],
) -> None:
    svc, sink = service
    assert svc.request("inc-1", "door-1", "door_forced_open") is not None
    assert svc.request("inc-1", "door-1", "door_forced_open") is None  # redelivery
    assert svc.request("inc-2", "door-2") is None  # no camera
    await svc.drain()
    [(ref, stored)] = sink.attached
    assert ref == "inc-1" and stored.camera_id == "cam-file" and stored.pinned
    assert svc.store.read(stored.id) is not None and svc.store.for_ref("inc-1") == [stored]


async def test_failing_sink_never_raises(service: tuple[SnapshotService, RecordingSink]) -> None:
    svc, sink = service
    sink.fail = True
    task = svc.request("inc-3", "cam-1")
    assert task is not None
    stored = await task
    assert stored is not None  # stored even though the sink failed


def event(
    event_id: str, device: str, type: EventType, extra: dict[str, Any] | None = None
) -> Event:
    return Event(
        event_id=event_id,
        occurred_at=T0,
        received_at=T0,
        site="s1",
        device_id=device,
        kind=DeviceKind.ACCESS if device.startswith("door") else DeviceKind.PERIMETER,
        type=type,
        attributes={"extra": extra or {}},
    )


async def test_watching_the_bus_snaps_trigger_events_only(tmp_path: Path, video: Path) -> None:
    bus = EventBus()
    bus.bind(asyncio.get_running_loop())
    sink = RecordingSink()
    cameras = [CameraConfig(id="cam-file", stream=str(video))]
    svc = SnapshotService(cameras, EvidenceStore(tmp_path), registry=REGISTRY, sink=sink)
    await svc.start(bus)
    try:
        bus.publish(event("e1", "door-1", EventType.DOOR_FORCED_OPEN))
        bus.publish(event("e2", "door-1", EventType.ACCESS_GRANTED))  # not a trigger
        bus.publish(event("e3", "door-1", EventType.INTRUSION, {"snapshot": "x"}))  # has one
        for _ in range(100):
            await asyncio.sleep(0.01)
            if svc.stats.requested:
                break
        await svc.drain()
        assert [ref for ref, _ in sink.attached] == ["e1"]
    finally:
        await svc.stop()


def test_camera_config_errors() -> None:
    with pytest.raises(ValueError, match="needs a stream"):
        CameraConfig(id="c")
    with pytest.raises(ValueError, match="http"):
        CameraConfig(id="c", snapshot_url="ftp://x/snap")
    with pytest.raises(ValueError, match="Extra inputs"):
        CameraConfig(id="c", stream="x.avi", pasword_env="X")  # type: ignore[call-arg]
    rtsp = CameraConfig(
        id="c", stream="rtsp://10.0.0.5:554/ch1", username="admin", password_env="TEST_CAM_PASSWORD"
    )
    assert rtsp.stream_source() == f"rtsp://admin:{PASSWORD}@10.0.0.5:554/ch1"


# -- the routes -----------------------------------------------------------------------


@dataclass
class StubRuntime:
    engine: Any = field(default_factory=lambda: create_engine("sqlite://"))
    bus: EventBus = field(default_factory=EventBus)

    def health(self) -> HealthReport:
        return HealthReport(broker=BrokerHealth(connected=True, host="127.0.0.1", port=1883))


async def test_evidence_routes(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path)
    stored = store.save(snap(0), ref="inc-7", pin=True)
    app = trusted(create_app(StubRuntime(), extra_routers=[evidence_routes.router]))
    app.state.evidence = store
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        listed = (await client.get("/api/evidence", params={"ref": "inc-7"})).json()
        assert [e["id"] for e in listed] == [stored.id]
        meta = (await client.get(f"/api/evidence/{stored.id}")).json()
        assert meta["camera_id"] == "cam-1" and meta["captured_at"].startswith("2026-05-01T08:00")
        image = await client.get(meta["image_url"])
        assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"
        assert image.content == IMAGE
        missing = stored.id[:-8] + "00000000"
        assert (await client.get(f"/api/evidence/{missing}")).status_code == 404
        assert (await client.get("/api/evidence/..%2F..%2Fetc/image")).status_code in (404, 422)
