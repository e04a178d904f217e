"""The virtual fence's per-frame logic: background subtraction inside a polygon.

Pipeline per frame (at the analysis resolution):

1. grey, Gaussian blur (sensor noise), then gain-normalised so the frame's mean is constant:
   a global brightness change (dusk, clouds, auto-exposure) scales every pixel alike and is
   cancelled before the background model sees it;
2. MOG2 (or KNN) foreground with a slow learning rate, shadows off, masked to the zone;
3. morphological open (speckle) and close (fill the object);
4. the largest blob at least ``min_area_px`` is an object;
5. more than ``max_foreground_fraction`` of the zone changing at once is a scene change (lights
   switched, camera bumped): the model relearns from that frame and nothing is reported.

State: warm-up → armed; ``dwell_frames`` (and ``dwell_s``) consecutive frames with an object
give one ``FenceHit``; the fence re-arms after ``clear_frames`` empty frames and ``cooldown_s``.
So one crossing is one hit. Not thread-safe: one detector per stream thread.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from gateway.fence.config import FenceConfig

Frame = npt.NDArray[np.uint8]
NORMALISED_MEAN = 128.0


@dataclass(frozen=True, slots=True)
class FenceHit:
    fence_id: str
    frame_index: int
    t: float  # seconds on the caller's clock (stream or monotonic time)
    bbox: tuple[int, int, int, int]  # x, y, w, h at the analysis resolution
    area_px: int
    dwell_frames: int


class FenceDetector:
    def __init__(self, config: FenceConfig, frame_size: tuple[int, int]) -> None:
        """``frame_size`` is (width, height) of the frames given to ``process``."""
        self.config = config
        width, height = frame_size
        self.scale = min(1.0, config.analysis_width / width)
        self.size = (max(1, round(width * self.scale)), max(1, round(height * self.scale)))
        w, h = self.size
        polygon = np.array([(round(x * (w - 1)), round(y * (h - 1))) for x, y in config.zone])
        self.mask: Frame = np.zeros((h, w), np.uint8)
        cv2.fillPoly(self.mask, [polygon.astype(np.int32)], 255)
        self.zone_px = int(cv2.countNonZero(self.mask))
        if config.algorithm == "knn":
            self._model: cv2.BackgroundSubtractor = cv2.createBackgroundSubtractorKNN(
                history=500, dist2Threshold=config.var_threshold * 16, detectShadows=False
            )
        else:
            self._model = cv2.createBackgroundSubtractorMOG2(
                history=500, varThreshold=config.var_threshold, detectShadows=False
            )
        self._open = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
        self._close = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
        self.frames = 0
        self.scene_changes = 0
        self.hits = 0
        self._present = 0
        self._present_since: float | None = None
        self._absent = 0
        self._armed = True
        self._last_hit_t: float | None = None
        self.last_t = 0.0

    def prepare(self, frame: Frame) -> Frame:
        """Scale, grey, blur and gain-normalise one BGR (or grey) frame."""
        if frame.shape[1] != self.size[0] or frame.shape[0] != self.size[1]:
            frame = np.asarray(cv2.resize(frame, self.size, interpolation=cv2.INTER_AREA))
        grey = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        grey = cv2.GaussianBlur(grey, (5, 5), 0)
        mean = float(cv2.mean(grey)[0])
        if mean > 1.0:
            grey = cv2.convertScaleAbs(grey, alpha=NORMALISED_MEAN / mean)
        return np.asarray(grey, dtype=np.uint8)

    def foreground(self, grey: Frame, learning_rate: float) -> Frame:
        fg = self._model.apply(grey, learningRate=learning_rate)
        fg = cv2.bitwise_and(fg, self.mask)
        _, fg = cv2.threshold(fg, 200, 255, cv2.THRESH_BINARY)
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self._open)
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, self._close)
        return np.asarray(fg, dtype=np.uint8)

    def process(self, frame: Frame, t: float) -> FenceHit | None:
        """Feed one frame taken at ``t`` seconds; returns a hit once per crossing."""
        cfg = self.config
        self.frames += 1
        self.last_t = t
        grey = self.prepare(frame)
        warming = self.frames <= cfg.warmup_frames
        fg = self.foreground(grey, 0.2 if warming else cfg.learning_rate)
        if warming:
            return None
        changed = cv2.countNonZero(fg)
        if self.zone_px and changed > cfg.max_foreground_fraction * self.zone_px:
            # A scene change, not an object: relearn the background from this frame.
            self.scene_changes += 1
            self._model.apply(grey, learningRate=1.0)
            self._note_absent()
            return None
        blob = self._largest(fg) if changed >= cfg.min_area_px else None
        if blob is None:
            self._note_absent()
            return None
        area, bbox = blob
        self._absent = 0
        self._present += 1
        if self._present_since is None:
            self._present_since = t
        if not self._armed or self._present < cfg.dwell_frames:
            return None
        if t - self._present_since < cfg.dwell_s:
            return None
        if self._last_hit_t is not None and t - self._last_hit_t < cfg.cooldown_s:
            return None
        self._armed = False
        self._last_hit_t = t
        self.hits += 1
        return FenceHit(cfg.id, self.frames, t, bbox, area, self._present)

    def _note_absent(self) -> None:
        self._present = 0
        self._present_since = None
        self._absent += 1
        if not self._armed and self._absent >= self.config.clear_frames:
            self._armed = True

    def _largest(self, fg: Frame) -> tuple[int, tuple[int, int, int, int]] | None:
        count, _, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
        if count <= 1:
            return None
        areas = stats[1:, cv2.CC_STAT_AREA]
        best = int(np.argmax(areas)) + 1
        area = int(stats[best, cv2.CC_STAT_AREA])
        if area < self.config.min_area_px:
            return None
        x, y, w, h = (int(v) for v in stats[best, :4])
        return area, (x, y, w, h)
