"""``config/cameras.yaml``: cameras, evidence, virtual fences and live view, in one file.

::

    cameras:
      - id: cam-perimeter-north
        stream: rtsp://192.0.2.64:554/Streaming/Channels/102
        snapshot_url: http://192.0.2.64/onvif-http/snapshot?Profile_1
        username: admin
        password_env: LIANFANG_CAM_PASSWORD
    evidence: {max_mb: 2048, retention_days: 30}
    fences:
      - {id: north-wall, camera: cam-perimeter-north, zone: [[0.1, 0.4], [0.9, 0.4], [0.9, 0.9], [0.1, 0.9]]}
    live: {max_viewers_per_camera: 4}
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, model_validator

from gateway.config.loader import load_model
from gateway.evidence.cameras import CameraConfig, Strict
from gateway.evidence.service import EvidenceConfig
from gateway.fence.config import FenceConfig


class IceServerConfig(Strict):
    """A STUN/TURN server the site runs itself. None by default: closed networks first."""

    urls: list[str] = Field(..., min_length=1, description="stun:host:port or turn:host:port")
    username: str | None = None
    credential_env: str | None = Field(None, description="Environment variable with the secret")

    def credential(self) -> str | None:
        return os.environ.get(self.credential_env) if self.credential_env else None


class LiveConfig(Strict):
    enabled: bool = True
    ice_servers: list[IceServerConfig] = Field(
        default_factory=list,
        description="Empty (default): host candidates only, nothing is asked of the Internet",
    )
    host_addresses: list[str] | None = Field(
        None,
        description="Offer ICE candidates on these local addresses only (default: all but loopback)",
    )
    max_viewers_per_camera: int = Field(4, ge=1, le=100)
    max_viewers: int = Field(16, ge=1, le=1000, description="All cameras together")
    connect_timeout_s: float = Field(
        30, gt=0, le=600, description="A viewer that has not connected by then is dropped"
    )
    rtsp_transport: str = Field("tcp", pattern=r"^(tcp|udp)$")
    open_timeout_s: float = Field(10, gt=0, le=120, description="Opening the camera stream")


class VideoConfig(Strict):
    """The whole ``cameras.yaml``."""

    cameras: list[CameraConfig] = Field(default_factory=list)
    evidence: EvidenceConfig = EvidenceConfig()
    fences: list[FenceConfig] = Field(default_factory=list)
    live: LiveConfig = LiveConfig()

    @model_validator(mode="after")
    def _references(self) -> VideoConfig:
        ids = [c.id for c in self.cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"camera ids appear twice: {', '.join(dupes)}")
        fence_ids = [f.id for f in self.fences]
        if len(set(fence_ids)) != len(fence_ids):
            raise ValueError("fence ids must be unique")
        cams = {c.id: c for c in self.cameras}
        for fence in self.fences:
            camera = cams.get(fence.camera)
            if camera is None:
                raise ValueError(f"fence {fence.id!r}: unknown camera {fence.camera!r}")
            if camera.stream is None:
                raise ValueError(f"fence {fence.id!r}: camera {fence.camera!r} has no stream")
        return self

    def camera_map(self) -> dict[str, CameraConfig]:
        return {c.id: c for c in self.cameras}


def load_video_config(path: Path) -> VideoConfig:
    """Load ``cameras.yaml``; a missing file means no cameras. Errors name file and key."""
    if not path.is_file():
        return VideoConfig()
    return load_model(VideoConfig, path)
