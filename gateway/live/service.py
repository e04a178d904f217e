"""``LiveService``: WebRTC live view. One pull per camera, relayed to every viewer.

A viewer posts an SDP offer; the first viewer of a camera opens its stream (RTSP, or a file
played in a loop) with aiortc's ``MediaPlayer``; every viewer gets a ``MediaRelay`` proxy of
that one track. When the last viewer of a camera leaves (closes, fails, or never connects
within ``connect_timeout_s``) the player is stopped and the camera is no longer pulled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.contrib.media import MediaPlayer, MediaRelay
from av import VideoFrame

from gateway.evidence.cameras import CameraConfig, redact
from gateway.live.config import LiveConfig
from gateway.live.ice import restrict_host_addresses, rtc_configuration

log = logging.getLogger(__name__)


class PrivateFrames(MediaStreamTrack):
    """A viewer's own copy of each relayed frame.

    The relay hands every viewer the same frame object, and each viewer's encoder runs in a
    worker thread of its own; aiortc's VP8 encoder converts and flags the frame it is given,
    so two encoders working on one shared frame at once crashed the process (a segfault in
    libvpx, about one run in fifteen of tests/test_webrtc.py). The copy is made here, on the
    event loop, one viewer after another."""

    kind = "video"

    def __init__(self, source: MediaStreamTrack) -> None:
        super().__init__()
        self._source = source

    async def recv(self) -> VideoFrame:
        frame = await self._source.recv()
        assert isinstance(frame, VideoFrame)
        own = VideoFrame.from_ndarray(frame.to_ndarray(format="yuv420p"), format="yuv420p")
        own.pts, own.time_base = frame.pts, frame.time_base
        return own

    def stop(self) -> None:
        self._source.stop()
        super().stop()


class LiveError(Exception):
    """Base of the live-view errors below."""


class UnknownCamera(LiveError):
    pass


class ViewerLimit(LiveError):
    pass


class StreamUnavailable(LiveError):
    pass


class LiveDisabled(LiveError):
    pass


@dataclass(frozen=True, slots=True)
class LiveAnswer:
    session_id: str
    sdp: str
    type: str


@dataclass
class Viewer:
    id: str
    camera_id: str
    pc: RTCPeerConnection
    track: MediaStreamTrack
    created: float = field(default_factory=time.monotonic)


@dataclass
class Feed:
    camera_id: str
    player: MediaPlayer
    relay: MediaRelay
    viewers: dict[str, Viewer] = field(default_factory=dict)

    @property
    def source(self) -> MediaStreamTrack:
        track = self.player.video
        assert track is not None
        return track

    def alive(self) -> bool:
        return self.source.readyState == "live"


PlayerFactory = Callable[[CameraConfig, LiveConfig], MediaPlayer]


def open_player(camera: CameraConfig, config: LiveConfig) -> MediaPlayer:
    """Blocking (FFmpeg opens the stream): call it from a worker thread."""
    source = camera.stream_source()
    if camera.is_file():
        return MediaPlayer(source, loop=True)
    options = {"rtsp_transport": config.rtsp_transport} if source.startswith("rtsp") else {}
    return MediaPlayer(source, options=options, timeout=round(config.open_timeout_s))


class LiveService:
    def __init__(
        self,
        cameras: Mapping[str, CameraConfig] | Iterable[CameraConfig],
        config: LiveConfig | None = None,
        *,
        player_factory: PlayerFactory = open_player,
    ) -> None:
        cams = cameras if isinstance(cameras, Mapping) else {c.id: c for c in cameras}
        self.cameras = {k: c for k, c in cams.items() if c.stream is not None}
        self.config = config or LiveConfig()
        self._factory = player_factory
        self._feeds: dict[str, Feed] = {}
        self._lock = asyncio.Lock()
        self._watchdogs: set[asyncio.Task[None]] = set()
        self.players_opened = 0

    async def start(self) -> None:
        if self.config.host_addresses is not None:
            restrict_host_addresses(self.config.host_addresses)

    async def stop(self) -> None:
        for feed in list(self._feeds.values()):
            for viewer in list(feed.viewers.values()):
                await self._drop(viewer)
        for task in list(self._watchdogs):
            task.cancel()
        if self.config.host_addresses is not None:
            restrict_host_addresses(None)

    # -- queries --------------------------------------------------------------------------

    def viewers(self, camera_id: str) -> int:
        feed = self._feeds.get(camera_id)
        return len(feed.viewers) if feed else 0

    def pulling(self, camera_id: str) -> bool:
        return camera_id in self._feeds

    def total_viewers(self) -> int:
        return sum(len(f.viewers) for f in self._feeds.values())

    # -- sessions -------------------------------------------------------------------------

    async def offer(self, camera_id: str, sdp: str, type: str = "offer") -> LiveAnswer:
        if not self.config.enabled:
            raise LiveDisabled("live view is disabled")
        camera = self.cameras.get(camera_id)
        if camera is None:
            raise UnknownCamera(camera_id)
        async with self._lock:  # limits and the one-pull-per-camera rule need one writer
            if self.viewers(camera_id) >= self.config.max_viewers_per_camera:
                raise ViewerLimit(
                    f"camera {camera_id} has {self.config.max_viewers_per_camera} viewers"
                )
            if self.total_viewers() >= self.config.max_viewers:
                raise ViewerLimit(f"{self.config.max_viewers} viewers in all")
            feed = await self._feed(camera)
            pc = RTCPeerConnection(rtc_configuration(self.config))
            track = PrivateFrames(feed.relay.subscribe(feed.source, buffered=False))
            viewer = Viewer(secrets.token_urlsafe(12), camera_id, pc, track)
            feed.viewers[viewer.id] = viewer
        try:
            pc.addTrack(track)
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=type))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception:
            await self._drop(viewer)
            raise
        self._watch(viewer)
        local = pc.localDescription
        log.info("live: viewer %s on %s (%d)", viewer.id, camera_id, self.viewers(camera_id))
        return LiveAnswer(viewer.id, local.sdp, local.type)

    async def close_session(self, camera_id: str, session_id: str) -> bool:
        feed = self._feeds.get(camera_id)
        viewer = feed.viewers.get(session_id) if feed else None
        if viewer is None:
            return False
        await self._drop(viewer)
        return True

    # -- internals ------------------------------------------------------------------------

    async def _feed(self, camera: CameraConfig) -> Feed:
        feed = self._feeds.get(camera.id)
        if feed is not None and feed.alive():
            return feed
        if feed is not None:  # the stream ended (camera rebooted): open it again
            self._stop_feed(feed)
        try:
            player = await asyncio.to_thread(self._factory, camera, self.config)
        except Exception as exc:
            log.warning("live: cannot open %s: %s", redact(camera.stream or ""), exc)
            raise StreamUnavailable(f"cannot open the stream of {camera.id}") from exc
        if player.video is None:
            raise StreamUnavailable(f"the stream of {camera.id} has no video")
        self.players_opened += 1
        feed = Feed(camera.id, player, MediaRelay())
        self._feeds[camera.id] = feed
        return feed

    def _watch(self, viewer: Viewer) -> None:
        @viewer.pc.on("connectionstatechange")
        async def on_state() -> None:
            if viewer.pc.connectionState in ("failed", "closed"):
                await self._drop(viewer)

        async def watchdog() -> None:
            await asyncio.sleep(self.config.connect_timeout_s)
            if viewer.pc.connectionState != "connected":
                log.info("live: viewer %s never connected, dropping it", viewer.id)
                await self._drop(viewer)

        task = asyncio.create_task(watchdog())
        self._watchdogs.add(task)
        task.add_done_callback(self._watchdogs.discard)

    async def _drop(self, viewer: Viewer) -> None:
        feed = self._feeds.get(viewer.camera_id)
        if feed is None or feed.viewers.pop(viewer.id, None) is None:
            return
        viewer.track.stop()
        with contextlib.suppress(Exception):
            await viewer.pc.close()
        if not feed.viewers and self._feeds.get(viewer.camera_id) is feed:
            self._stop_feed(feed)
            log.info("live: last viewer left %s, stream closed", viewer.camera_id)

    def _stop_feed(self, feed: Feed) -> None:
        self._feeds.pop(feed.camera_id, None)
        feed.source.stop()  # stops the player's reader thread and closes the container

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"camera_id": cid, "viewers": self.viewers(cid), "pulling": self.pulling(cid)}
            for cid in sorted(self.cameras)
        ]
