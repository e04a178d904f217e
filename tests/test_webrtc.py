"""Live view over WebRTC: an aiortc client in the test posts an offer through the API and
must receive real decoded frames; ICE stays on 127.0.0.1 and no STUN server is configured."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from sqlalchemy import create_engine

from gateway.api.app import create_app
from gateway.bus import EventBus
from gateway.demo.synthetic_video import write_demo_video
from gateway.evidence.cameras import CameraConfig
from gateway.health import BrokerHealth, HealthReport
from gateway.live import LiveConfig, LiveService
from gateway.live import routes as live_routes
from gateway.live.ice import rtc_configuration
from tests.support.auth import trusted

FRAME_TIMEOUT_S = 10.0


@dataclass
class StubRuntime:
    engine: Any = field(default_factory=lambda: create_engine("sqlite://"))
    bus: EventBus = field(default_factory=EventBus)

    def health(self) -> HealthReport:
        return HealthReport(broker=BrokerHealth(connected=True, host="127.0.0.1", port=1883))


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_video(tmp_path_factory.mktemp("live") / "cam.avi", seconds=3, fps=10)


@pytest.fixture
async def live(video: Path) -> AsyncIterator[tuple[LiveService, httpx.AsyncClient]]:
    cameras = [
        CameraConfig(id="cam-1", stream=str(video)),
        CameraConfig(id="cam-2", stream=str(video)),
    ]
    config = LiveConfig(host_addresses=["127.0.0.1"], max_viewers_per_camera=2, max_viewers=3)
    service = LiveService(cameras, config)
    await service.start()
    app = trusted(create_app(StubRuntime(), extra_routers=[live_routes.router]))
    app.state.live = service
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        yield service, client
    await service.stop()


class Viewer:
    """A browser stand-in: a receive-only aiortc peer."""

    def __init__(self) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver("video", direction="recvonly")
        self.track: asyncio.Future[MediaStreamTrack] = asyncio.get_running_loop().create_future()
        self.offer_sdp = ""
        self.session_id = ""

        @self.pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if not self.track.done():
                self.track.set_result(track)

    async def offer(self) -> dict[str, str]:
        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.offer_sdp = self.pc.localDescription.sdp
        return {"sdp": self.offer_sdp, "type": "offer"}

    async def connect(self, client: httpx.AsyncClient, camera: str) -> httpx.Response:
        response = await client.post(f"/api/live/{camera}/offer", json=await self.offer())
        if response.status_code == 200:
            body = response.json()
            self.session_id = body["session_id"]
            await self.pc.setRemoteDescription(RTCSessionDescription(body["sdp"], body["type"]))
        return response

    async def frames(self, n: int) -> list[np.ndarray]:
        track = await asyncio.wait_for(self.track, FRAME_TIMEOUT_S)
        out = []
        for _ in range(n):
            frame = await asyncio.wait_for(track.recv(), FRAME_TIMEOUT_S)
            out.append(frame.to_ndarray(format="bgr24"))
        return out

    async def close(self) -> None:
        await self.pc.close()


def candidate_addresses(sdp: str) -> set[str]:
    # a=candidate:<foundation> <component> <transport> <priority> <address> <port> typ ...
    return {line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")}


def test_default_configuration_has_no_ice_servers() -> None:
    assert rtc_configuration(LiveConfig()).iceServers == []
    assert LiveConfig().host_addresses is None


async def test_viewer_receives_real_decoded_frames_over_loopback(
    live: tuple[LiveService, httpx.AsyncClient],
) -> None:
    service, client = live
    viewer = Viewer()
    try:
        response = await viewer.connect(client, "cam-1")
        assert response.status_code == 200, response.text
        answer = response.json()["sdp"]
        assert candidate_addresses(viewer.offer_sdp) == {"127.0.0.1"}
        assert candidate_addresses(answer) == {"127.0.0.1"}
        frames = await viewer.frames(8)
        assert all(f.shape == (360, 640, 3) for f in frames)
        assert float(np.abs(frames[-1].astype(int) - frames[0].astype(int)).mean()) > 0.5
        assert float(frames[-1].std()) > 10  # a picture, not a flat colour
        assert service.viewers("cam-1") == 1 and service.pulling("cam-1")
    finally:
        await viewer.close()


async def test_one_pull_per_camera_limit_and_release(
    live: tuple[LiveService, httpx.AsyncClient],
) -> None:
    service, client = live
    a, b, c = Viewer(), Viewer(), Viewer()
    try:
        assert (await a.connect(client, "cam-1")).status_code == 200
        assert (await b.connect(client, "cam-1")).status_code == 200
        over = await c.connect(client, "cam-1")
        assert over.status_code == 429
        assert service.players_opened == 1  # both viewers share one pull
        await a.frames(2)
        await b.frames(2)
        listed = (await client.get("/api/live")).json()
        assert {"camera_id": "cam-1", "viewers": 2, "pulling": True} in listed

        gone = await client.delete(f"/api/live/cam-1/sessions/{a.session_id}")
        assert gone.status_code == 204
        assert service.pulling("cam-1") and service.viewers("cam-1") == 1
        assert (await client.delete(f"/api/live/cam-1/sessions/{a.session_id}")).status_code == 404
        assert (await client.delete(f"/api/live/cam-1/sessions/{b.session_id}")).status_code == 204
        assert not service.pulling("cam-1")  # last viewer gone: the camera is not pulled
    finally:
        for v in (a, b, c):
            await v.close()


async def test_unknown_camera_and_bad_offer(live: tuple[LiveService, httpx.AsyncClient]) -> None:
    service, client = live
    viewer = Viewer()
    try:
        assert (await viewer.connect(client, "no-such-cam")).status_code == 404
        bad = await client.post("/api/live/cam-2/offer", json={"sdp": "v=0\r\n", "type": "offer"})
        assert bad.status_code == 422
        assert not service.pulling("cam-2")
        wrong_type = await client.post("/api/live/cam-2/offer", json={"sdp": "x", "type": "answer"})
        assert wrong_type.status_code == 422
    finally:
        await viewer.close()


async def test_viewer_that_leaves_releases_the_camera(
    live: tuple[LiveService, httpx.AsyncClient],
) -> None:
    service, client = live
    viewer = Viewer()
    assert (await viewer.connect(client, "cam-2")).status_code == 200
    await viewer.frames(1)
    await viewer.close()  # the browser tab closes without DELETE
    for _ in range(200):
        if not service.pulling("cam-2"):
            break
        await asyncio.sleep(0.05)
    assert not service.pulling("cam-2")


def test_cameras_yaml_loads_and_errors_name_file_and_key(tmp_path: Path) -> None:
    from gateway.config import ConfigErrors
    from gateway.live import load_video_config

    assert load_video_config(tmp_path / "missing.yaml").cameras == []
    good = tmp_path / "cameras.yaml"
    good.write_text(
        "cameras:\n"
        "  - {id: cam-1, stream: videos/cam.avi}\n"
        "fences:\n"
        "  - {id: f1, camera: cam-1, zone: [[0, 0], [1, 0], [1, 1]]}\n"
        "live:\n"
        "  ice_servers: [{urls: ['stun:192.0.2.1:3478']}]\n",
        encoding="utf-8",
    )
    config = load_video_config(good)
    assert config.cameras[0].stream == str((tmp_path / "videos" / "cam.avi").resolve())
    assert rtc_configuration(config.live).iceServers[0].urls == ["stun:192.0.2.1:3478"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("cameras:\n  - {id: cam-1, stream: x.avi, max_viewers: 3}\n", encoding="utf-8")
    with pytest.raises(ConfigErrors) as exc:
        load_video_config(bad)
    assert f"{bad}: cameras[0].max_viewers: unknown key (typo?)" in str(exc.value)
    orphan = tmp_path / "orphan.yaml"
    orphan.write_text("fences:\n  - {id: f1, camera: nope, zone: [[0, 0], [1, 0], [1, 1]]}\n")
    with pytest.raises(ConfigErrors, match="unknown camera 'nope'"):
        load_video_config(orphan)
