"""A synthetic camera: a short video of moving shapes over a textured scene, with a clock.

Written with OpenCV's VideoWriter as Motion-JPEG in AVI (the codec every OpenCV build has),
so tests and the demo have a "camera" without a camera: the live view plays it in a loop and
the virtual fence watches it (a figure crosses the middle third once per loop).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

Frame = npt.NDArray[np.uint8]


def scene(width: int, height: int) -> Frame:
    """A static, textured background: a wall, a lawn, a lamp post."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 70 + 90 * x / width + 20 * np.sin(y / 17.0)
    img = np.dstack([base * 0.8 + 20, base, base * 0.9]).clip(0, 255).astype(np.uint8)
    cv2.rectangle(img, (0, height * 2 // 3), (width, height), (60, 120, 60), -1)
    cv2.rectangle(
        img, (width // 10, height // 4), (width // 10 + 12, height * 2 // 3), (90, 90, 90), -1
    )
    return img


def frame_at(
    index: int, frames: int, width: int, height: int, background: Frame, t0: datetime, fps: float
) -> Frame:
    img = background.copy()
    # a figure walks from left to right once per loop
    walker_w, walker_h = width // 20, height // 4
    x = int(-walker_w + (width + walker_w) * index / max(frames - 1, 1))
    y = height * 2 // 3 - walker_h
    cv2.rectangle(img, (x, y), (x + walker_w, y + walker_h), (30, 30, 160), -1)
    cv2.circle(img, (x + walker_w // 2, y - walker_w // 2), walker_w // 2, (40, 40, 170), -1)
    # a ball bouncing in the sky keeps every frame different for the live view
    bx = int((width - 40) * (0.5 + 0.5 * np.sin(index / 7.0))) + 20
    cv2.circle(img, (bx, height // 8), 10, (0, 200, 255), -1)
    stamp = (t0 + timedelta(seconds=index / fps)).strftime("%Y-%m-%d %H:%M:%S")
    cv2.putText(
        img,
        f"{stamp}  #{index}",
        (10, 24),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.6,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    return img


def write_demo_video(
    path: Path,
    *,
    seconds: float = 6.0,
    fps: float = 10.0,
    size: tuple[int, int] = (640, 360),
    t0: datetime | None = None,
) -> Path:
    """Write the synthetic video to ``path`` (``.avi``, MJPG) and return it. Idempotent in
    content for a given ``t0``."""
    width, height = size
    frames = max(2, round(seconds * fps))
    start = t0 or datetime(2026, 1, 1, tzinfo=UTC)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    try:
        background = scene(width, height)
        for i in range(frames):
            writer.write(frame_at(i, frames, width, height, background, start, fps))
    finally:
        writer.release()
    return path
