"""The demo compound's cameras: four simulated ONVIF cameras, a synthetic video for live view
and the virtual fence, and the ``cameras.yaml`` that ties them together (written into the
demo's data directory, since it names files made at start)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from pathlib import Path

import yaml

from gateway.camera_sim import CameraSimulator
from gateway.live.synthetic import write_demo_video

CAMERAS = ["cam-north", "cam-east", "cam-south", "cam-west"]  # as in config/onvif.yaml
BASE_PORT = 18081  # config/onvif.yaml points at 18081..18084
PASSWORD_ENV = "LIANFANG_DEMO_CAMERA_PASSWORD"


def demo_password() -> str:
    """The simulator's password, shared with the gateway through the environment."""
    return os.environ.setdefault(PASSWORD_ENV, "demo-only-camera-password")


def write_cameras_file(data_dir: Path) -> Path:
    """Synthetic video (someone walking along the north wall) for every camera's stream, the
    simulator's snapshot URI for evidence, and a fence on the north camera."""
    video = write_demo_video(data_dir / "demo-perimeter.avi", seconds=20)
    config = {
        "cameras": [
            {
                "id": camera,
                "stream": str(video),
                "snapshot_url": f"http://127.0.0.1:{BASE_PORT + i}/onvif/snapshot.jpg",
                "auth": "digest",
                "username": "admin",
                "password_env": PASSWORD_ENV,
            }
            for i, camera in enumerate(CAMERAS)
        ],
        "fences": [
            {
                "id": "north-wall",
                "camera": "cam-north",
                "zone": [[0.1, 0.4], [0.9, 0.4], [0.9, 0.95], [0.1, 0.95]],
                "zone_name": "北侧围墙",
            }
        ],
    }
    path = data_dir / "cameras.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path


def simulator() -> CameraSimulator:
    return CameraSimulator(CAMERAS, base_port=BASE_PORT, password=demo_password())


async def camera_activity(
    sim: CameraSimulator, stop: asyncio.Event, *, rate: float, seed: int
) -> None:
    """Now and then a camera's own analytics fire (every ~40 s at rate 1): motion mostly,
    sometimes a line crossing or intrusion, rarely tampering."""
    rng = random.Random(seed)
    kinds = ["motion"] * 6 + ["line_crossing"] * 2 + ["intrusion", "tamper"]
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=rng.expovariate(rate / 40))
        if not stop.is_set():
            sim[rng.choice(CAMERAS)].inject_kind(rng.choice(kinds))
