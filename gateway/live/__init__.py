"""Live view over WebRTC (aiortc), and ``cameras.yaml``.

Public surface::

    VideoConfig, load_video_config   the whole cameras.yaml (cameras, evidence, fences, live)
    LiveConfig                       viewer limits, ICE servers (none by default)
    LiveService                      one pull per camera, relayed to every viewer

Its HTTP routes (``POST /api/live/{camera_id}/offer``, …) are ``gateway.live.routes``.
"""

from gateway.live.config import IceServerConfig, LiveConfig, VideoConfig, load_video_config
from gateway.live.service import LiveService

__all__ = [
    "IceServerConfig",
    "LiveConfig",
    "LiveService",
    "VideoConfig",
    "load_video_config",
]
