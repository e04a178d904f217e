"""ONVIF cameras and access controllers: PullPoint events in, Lianfang events out.

Public surface::

    from device_adapters.onvif import OnvifCameraManager, load_cameras

    manager = OnvifCameraManager(load_cameras(path).cameras, emit_events, emit_quarantine)
    await manager.start(); ...; manager.status(); await manager.stop()

Modules: ``config`` (onvif.yaml), ``client`` (the locked-down onvif-zeep-async camera),
``safety`` (host pinning, size caps, XML settings), ``pullpoint`` (one subscription),
``topics`` (topic table → events), ``health`` (states, reasons, error classification),
``manager`` (one task per camera).

Errors a camera can cause, as health states (``health.HealthState``)::

    auth_failed     wrong user/password (zeep Fault NotAuthorized, ONVIFAuthError)
    unreachable     refused / timed out / dropped (aiohttp.ClientError, TimeoutError, OSError)
    protocol_error  malformed SOAP, DTD/entities, oversized answer, foreign host refused
    resubscribing   subscription lost: reboot, silent, renew failed
"""

from __future__ import annotations

from device_adapters.onvif.config import CameraConfig, CamerasConfig, load_cameras
from device_adapters.onvif.health import CameraStatus, HealthReason, HealthState
from device_adapters.onvif.manager import OnvifCameraManager

__all__ = [
    "CameraConfig",
    "CameraStatus",
    "CamerasConfig",
    "HealthReason",
    "HealthState",
    "OnvifCameraManager",
    "load_cameras",
]
