"""The demo compound's cameras: four simulated ONVIF cameras on loopback, a synthetic video
for live view and the virtual fence, and the ``cameras.yaml`` and ``onvif.yaml`` that tie
them together (written into the demo's data directory, since they name files made and ports
taken at start).

Ports: ``BASE_PORT``..+3 by default (as the shipped ``config/onvif.yaml`` shows); when one of
them is taken (another demo, another program), every camera gets a free port instead, and
the files written name the ports actually used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from pathlib import Path

import yaml

from gateway.demo.camera_sim import CameraSimulator
from gateway.demo.synthetic_video import write_demo_video

log = logging.getLogger(__name__)

CAMERAS = ["cam-north", "cam-east", "cam-south", "cam-west"]  # devices of the demo compound
SITE = "demo-compound"  # config/sites/demo-compound.yaml
BASE_PORT = 18081  # the preferred ports: 18081..18084
PASSWORD_ENV = "LIANFANG_DEMO_CAMERA_PASSWORD"


def demo_password() -> str:
    """The simulator's password, shared with the gateway through the environment."""
    return os.environ.setdefault(PASSWORD_ENV, "demo-only-camera-password")


async def start_simulator(base_port: int = BASE_PORT) -> CameraSimulator:
    """The four cameras, started: on ``base_port``..+3 when all are free, else (or with
    ``base_port`` 0) each on a free loopback port. ``sim[camera].url`` tells which."""
    if base_port:
        sim = CameraSimulator(CAMERAS, base_port=base_port, password=demo_password())
        try:
            await sim.start()
            return sim
        except OSError as exc:
            await sim.stop()
            log.info(
                "demo cameras: port %d..%d not free (%s): taking free ports",
                base_port, base_port + len(CAMERAS) - 1, exc.strerror or exc,
            )  # fmt: skip
    sim = CameraSimulator(CAMERAS, base_port=0, password=demo_password())
    await sim.start()
    return sim


def write_onvif_file(data_dir: Path, sim: CameraSimulator) -> Path:
    """The demo's ``onvif.yaml``: each simulated camera of the demo compound on its actual
    port (the shipped ``config/onvif.yaml`` is an empty template for real cameras)."""
    config = {
        "cameras": [
            {
                "id": camera,
                "site": SITE,
                "url": sim[camera].url,
                "username": "admin",
                "password_env": PASSWORD_ENV,
            }
            for camera in CAMERAS
        ]
    }
    path = data_dir / "onvif.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False))
    return path


def write_cameras_file(data_dir: Path, sim: CameraSimulator) -> Path:
    """Synthetic video (someone walking along the north wall) for every camera's stream, the
    simulator's snapshot URI (on the camera's actual port) for evidence, and a fence on the
    north camera."""
    video = write_demo_video(data_dir / "demo-perimeter.avi", seconds=20)
    config = {
        "cameras": [
            {
                "id": camera,
                "stream": str(video),
                "snapshot_url": f"{sim[camera].url}/onvif/snapshot.jpg",
                "auth": "digest",
                "username": "admin",
                "password_env": PASSWORD_ENV,
            }
            for camera in CAMERAS
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
