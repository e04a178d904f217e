"""The simulated camera's snapshot: the synthetic scene (the one its live video shows) with
the camera id and the time on it, so evidence in the demo is a picture, not a black square.
``TINY_JPEG`` (8x8 grey) stays for tests that only need valid bytes."""

from __future__ import annotations

import base64
from datetime import datetime
from functools import lru_cache

import cv2

from gateway.demo.synthetic_video import Frame, frame_at, scene

TINY_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwc"
    "KDcpLDAxNDQ0Hyc5PTgyPC4zNDL/wAALCAAIAAgBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/EABQQAQAAAAAAAAAA"
    "AAAAAAAAAAD/2gAIAQEAAD8AKp//2Q=="
)
WIDTH, HEIGHT = 640, 360
FRAMES = 60  # the figure's walk across the picture, one step per second


@lru_cache(maxsize=1)
def _background() -> Frame:
    return scene(WIDTH, HEIGHT)


def snapshot_jpeg(camera_id: str, now: datetime) -> bytes:
    """A JPEG of the scene at ``now`` (the walking figure moves with the clock)."""
    index = int(now.timestamp()) % FRAMES
    img = frame_at(index, FRAMES, WIDTH, HEIGHT, _background(), now, 1.0)
    cv2.putText(img, camera_id, (10, HEIGHT - 14), cv2.FONT_HERSHEY_SIMPLEX, 0.6,
                (255, 255, 255), 1, cv2.LINE_AA)  # fmt: skip
    ok, encoded = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return encoded.tobytes() if ok else TINY_JPEG
