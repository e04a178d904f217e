"""``fences:`` in ``cameras.yaml``: a virtual fence is a polygon on one camera's picture."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gateway.evidence.cameras import Strict

Point = tuple[float, float]


class FenceConfig(Strict):
    id: str = Field(..., min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    camera: str = Field(..., description="Camera id (from cameras:) whose stream is watched")
    zone: list[Point] = Field(
        ...,
        min_length=3,
        max_length=64,
        description="Polygon corners as (x, y) fractions of the picture, 0..1, (0, 0) top left",
    )
    zone_name: str | None = Field(
        None, max_length=64, description="Label in the event's zone attribute (default: id)"
    )
    site: str | None = Field(None, description="Site of the events (default: the camera's site)")
    enabled: bool = True
    algorithm: Literal["mog2", "knn"] = "mog2"
    analysis_width: int = Field(
        640, ge=160, le=1920, description="Frames are scaled to this width before analysis"
    )
    max_fps: float = Field(10, gt=0, le=60, description="Frames analysed per second at most")
    min_area_px: int = Field(
        300, ge=1, description="Smallest object, in pixels at the analysis resolution"
    )
    dwell_frames: int = Field(3, ge=1, le=300, description="Consecutive frames with an object")
    dwell_s: float = Field(0.0, ge=0, le=60, description="...and at least this long")
    clear_frames: int = Field(
        8,
        ge=1,
        le=1000,
        description="Empty frames before the fence re-arms (one crossing, one event)",
    )
    cooldown_s: float = Field(10.0, ge=0, le=3600, description="Least time between two events")
    warmup_frames: int = Field(25, ge=1, le=5000, description="Frames that only learn the scene")
    learning_rate: float = Field(
        0.01, gt=0, le=1, description="Background adaptation per frame (slow lighting drift)"
    )
    var_threshold: float = Field(
        24.0, gt=0, le=1000, description="MOG2 varThreshold / KNN dist2Threshold scale"
    )
    max_foreground_fraction: float = Field(
        0.6,
        gt=0,
        le=1,
        description="More of the zone changing at once is a lighting or camera change, not an object",
    )
    realtime: bool = Field(True, description="Play files at their frame rate (streams always are)")
    loop_files: bool = Field(True, description="Start files again at the end (demo)")

    @model_validator(mode="after")
    def _inside(self) -> FenceConfig:
        for x, y in self.zone:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"zone point ({x}, {y}) is outside 0..1")
        return self
