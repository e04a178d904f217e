"""Virtual fence for cameras without analytics: background subtraction inside a polygon.

Public surface::

    FenceConfig     one fence: camera, zone polygon, area, dwell, cooldown
    FenceDetector   per-frame logic (pure; one per stream)
    FenceHit        what the detector reports, once per crossing
    FenceService    worker thread per fence → ``intrusion`` events with a JPEG
"""

from gateway.fence.config import FenceConfig
from gateway.fence.detector import FenceDetector, FenceHit
from gateway.fence.service import FenceService, build_event, fence_event_id

__all__ = [
    "FenceConfig",
    "FenceDetector",
    "FenceHit",
    "FenceService",
    "build_event",
    "fence_event_id",
]
