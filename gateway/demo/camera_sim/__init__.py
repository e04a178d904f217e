"""ONVIF camera simulator for tests and ``lianfang demo``: one loopback HTTP server per camera.

Usage::

    sim = CameraSimulator(cameras=["cam-north", "cam-east"])
    await sim.start()
    sim["cam-north"].inject_kind("intrusion")  # or POST /sim/events {"kind": "intrusion"}
    await sim.stop()
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from gateway.demo.camera_sim.camera import SAMPLE_EVENTS, Hostile, SimCamera
from gateway.demo.camera_sim.canary import Canary

__all__ = ["SAMPLE_EVENTS", "CameraSimulator", "Canary", "Hostile", "SimCamera"]


class CameraSimulator:
    """A set of simulated cameras on consecutive ports from ``base_port`` (0: any free port)."""

    def __init__(
        self,
        cameras: int | Iterable[str] = 4,
        *,
        host: str = "127.0.0.1",
        base_port: int = 0,
        username: str = "admin",
        password: str = "sim-password",
        clock_skew_s: float = 0.0,
    ) -> None:
        ids = (
            [f"cam-{i + 1}" for i in range(cameras)] if isinstance(cameras, int) else list(cameras)
        )
        self.cameras: dict[str, SimCamera] = {
            cid: SimCamera(
                cid,
                host=host,
                port=base_port + i if base_port else 0,
                username=username,
                password=password,
                clock_skew_s=clock_skew_s,
            )
            for i, cid in enumerate(ids)
        }

    def __getitem__(self, camera_id: str) -> SimCamera:
        return self.cameras[camera_id]

    def __iter__(self) -> Iterator[SimCamera]:
        return iter(self.cameras.values())

    async def start(self) -> None:
        for cam in self.cameras.values():
            await cam.start()

    async def stop(self) -> None:
        for cam in self.cameras.values():
            await cam.stop()
