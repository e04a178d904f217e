"""Virtual fence benchmark (not a test): frames per second per stream at 640×360.

Detector only (background subtraction, morphology, blobs, state), on synthetic 640×360 frames
decoded before timing, so stream decoding (the camera's codec, FFmpeg) is not counted; the
``decode_fps`` field measures OpenCV decoding of the same video as Motion-JPEG for scale.
One stream, then N streams in parallel threads (one detector each, as ``FenceService`` runs
them). ``cpu_ms_per_frame`` is process CPU time per frame; the machine is often shared.

    .venv/bin/python bench/fence.py [--frames 600] [--streams 1,2,4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.demo.synthetic_video import write_demo_video  # noqa: E402
from gateway.fence import FenceConfig, FenceDetector  # noqa: E402

W, H = 640, 360
ZONE = [(0.3, 0.3), (0.7, 0.3), (0.7, 0.95), (0.3, 0.95)]


def load_frames(path: Path) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    start = time.perf_counter()
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    decode_fps = len(frames) / (time.perf_counter() - start)
    cap.release()
    rng = np.random.default_rng(5)
    noisy = [
        np.clip(f.astype(np.int16) + rng.integers(-6, 7, f.shape, dtype=np.int16), 0, 255).astype(
            np.uint8
        )
        for f in frames
    ]
    return noisy, decode_fps


def run_streams(frames: list[np.ndarray], n_streams: int, n_frames: int) -> dict[str, float]:
    config = FenceConfig(id="bench", camera="cam", zone=ZONE, cooldown_s=0)
    counts = [0] * n_streams
    hits = [0] * n_streams

    def worker(k: int) -> None:
        detector = FenceDetector(config, (W, H))
        for i in range(n_frames):
            if detector.process(frames[(i + k * 7) % len(frames)], i / 10) is not None:
                hits[k] += 1
            counts[k] += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n_streams)]
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - wall0
    cpu = time.process_time() - cpu0
    total = sum(counts)
    return {
        "streams": n_streams,
        "frames_per_s_per_stream": round(total / n_streams / wall, 1),
        "frames_per_s_total": round(total / wall, 1),
        "cpu_ms_per_frame": round(cpu * 1000 / total, 2),
        "events": sum(hits),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=600, help="Frames per stream")
    ap.add_argument("--streams", default="1,2,4", help="Parallel stream counts to measure")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        video = write_demo_video(Path(tmp) / "bench.avi", seconds=12, fps=10, size=(W, H))
        frames, decode_fps = load_frames(video)
    results = [run_streams(frames, int(n), args.frames) for n in args.streams.split(",")]
    print(
        json.dumps(
            {
                "resolution": f"{W}x{H}",
                "frames_per_stream": args.frames,
                "cpu_count": os.cpu_count(),
                "opencv": cv2.__version__,
                "opencv_threads": cv2.getNumThreads(),
                "mjpeg_decode_fps": round(decode_fps, 1),
                "runs": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
