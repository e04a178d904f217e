"""Grab one JPEG from a camera: the ONVIF snapshot URI over HTTP, or a frame of the stream.

Both are bounded: the HTTP body is capped and must be a JPEG, the stream grab runs in a
worker thread with a deadline (a hung RTSP server abandons the thread, it cannot hang the
caller). Errors are ``SnapshotError`` with a short reason.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import cv2
import httpx
import numpy as np
import numpy.typing as npt

from gateway.evidence.cameras import CameraConfig, redact

log = logging.getLogger(__name__)

JPEG_MAGIC = b"\xff\xd8\xff"
DEFAULT_MAX_BYTES = 8 * 1024 * 1024
DEFAULT_JPEG_QUALITY = 85

Frame = npt.NDArray[np.uint8]


class SnapshotError(Exception):
    """A snapshot could not be taken; ``str()`` says why in a few words."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One JPEG from one camera, with the gateway time it was captured (UTC)."""

    camera_id: str
    captured_at: datetime
    jpeg: bytes
    method: Literal["http", "stream", "fence", "push"]  # push: sent by the device itself
    reason: str = ""

    def __repr__(self) -> str:  # keep the bytes out of logs
        return (
            f"Snapshot(camera_id={self.camera_id!r}, captured_at={self.captured_at.isoformat()}, "
            f"bytes={len(self.jpeg)}, method={self.method!r})"
        )


def check_jpeg(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    if len(data) > max_bytes:
        raise SnapshotError(f"image larger than {max_bytes} bytes")
    if not data.startswith(JPEG_MAGIC):
        raise SnapshotError("not a JPEG (bad magic bytes)")
    return data


def http_auth(camera: CameraConfig) -> httpx.Auth | None:
    if camera.auth == "none" or camera.username is None:
        return None
    password = camera.password() or ""
    if camera.auth == "basic":
        return httpx.BasicAuth(camera.username, password)
    return httpx.DigestAuth(camera.username, password)


async def fetch_http_snapshot(
    client: httpx.AsyncClient,
    camera: CameraConfig,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> bytes:
    """GET the camera's snapshot URL (digest or basic auth) and return the JPEG bytes.

    The body is read in chunks and abandoned past ``max_bytes``; ``Content-Length`` over the
    cap is refused before reading. The whole request is bounded by ``snapshot_timeout_s``.
    """
    if camera.snapshot_url is None:
        raise SnapshotError("camera has no snapshot_url")
    timeout = httpx.Timeout(camera.snapshot_timeout_s)
    try:
        async with client.stream(
            "GET", camera.snapshot_url, auth=http_auth(camera), timeout=timeout
        ) as response:
            if response.status_code != 200:
                raise SnapshotError(f"HTTP {response.status_code}")
            declared = response.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > max_bytes:
                raise SnapshotError(f"image larger than {max_bytes} bytes")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise SnapshotError(f"image larger than {max_bytes} bytes")
    except httpx.TimeoutException as exc:
        raise SnapshotError(f"timed out after {camera.snapshot_timeout_s:g}s") from exc
    except httpx.HTTPError as exc:
        raise SnapshotError(f"HTTP error: {type(exc).__name__}") from exc
    return check_jpeg(bytes(body), max_bytes)


def open_capture(source: str, timeout_s: float) -> cv2.VideoCapture:
    """Open a stream or file with OpenCV's FFmpeg backend, with open/read deadlines."""
    ms = int(timeout_s * 1000)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
    return cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)


def grab_stream_frame(
    source: str, timeout_s: float, cancel: threading.Event | None = None
) -> Frame:
    """Blocking: open ``source`` and return one decoded BGR frame. Run it in a worker thread."""
    cap = open_capture(source, timeout_s)
    try:
        if not cap.isOpened():
            raise SnapshotError(f"cannot open stream {redact(source)}")
        # The first frames of a live stream can be grey until a key frame arrives; a few
        # reads are cheap and stop at the first real frame.
        for _ in range(5):
            if cancel is not None and cancel.is_set():
                raise SnapshotError("cancelled")
            ok, frame = cap.read()
            if ok and frame is not None and frame.size:
                return np.asarray(frame, dtype=np.uint8)
        raise SnapshotError(f"no frame from stream {redact(source)}")
    finally:
        cap.release()


def encode_jpeg(frame: Frame, quality: int = DEFAULT_JPEG_QUALITY) -> bytes:
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise SnapshotError("JPEG encoding failed")
    return bytes(buf.tobytes())
