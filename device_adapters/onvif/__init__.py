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

import logging as _logging

# onvif-zeep-async calls logging.basicConfig(level=INFO) when imported, which would take over
# the gateway's root logger (and make its own later basicConfig a no-op). Undo that.
_root = _logging.getLogger()
_saved = (list(_root.handlers), _root.level)
import onvif.client  # noqa: E402, F401

if _root.handlers != _saved[0]:
    for _handler in [h for h in _root.handlers if h not in _saved[0]]:
        _root.removeHandler(_handler)
    _root.setLevel(_saved[1])

from device_adapters.onvif.config import CameraConfig, CamerasConfig, load_cameras  # noqa: E402
from device_adapters.onvif.health import CameraStatus, HealthReason, HealthState  # noqa: E402
from device_adapters.onvif.manager import OnvifCameraManager  # noqa: E402

__all__ = [
    "CameraConfig",
    "CameraStatus",
    "CamerasConfig",
    "HealthReason",
    "HealthState",
    "OnvifCameraManager",
    "load_cameras",
]
