"""Health states of a camera, the reasons carried by device-health events, and the one place
that turns an exception into a state and a message a person can act on."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import aiohttp
import zeep.exceptions
from lxml import etree
from onvif.exceptions import ONVIFAuthError, ONVIFError, ONVIFTimeoutError
from onvif.util import is_auth_error, stringify_onvif_error

from device_adapters.onvif.safety import (
    ForeignHostRefused,
    MalformedXml,
    ResponseTooLarge,
    UnsafeXml,
)


class HealthState(StrEnum):
    CONNECTING = "connecting"  # first attempt, nothing known yet
    ONLINE = "online"  # subscribed and pulling
    RESUBSCRIBING = "resubscribing"  # subscription lost (reboot, silence, renew failed)
    AUTH_FAILED = "auth_failed"  # wrong user/password (or clock too far off to log in)
    UNREACHABLE = "unreachable"  # refused, timed out, connection dropped
    PROTOCOL_ERROR = "protocol_error"  # malformed/unsafe/oversized SOAP, foreign address
    STOPPED = "stopped"


class HealthReason(StrEnum):
    """``extra.reason`` of ``online`` / ``offline`` device-health events (docs/cameras-onvif.md)."""

    CONNECTED = "connected"  # online: first subscription after start or after an outage
    RESUBSCRIBED = "resubscribed"  # online: a lost subscription was recreated
    SUBSCRIPTION_LOST = "subscription_lost"  # offline: camera forgot it (reboot), pull faulted
    SUBSCRIPTION_SILENT = "subscription_silent"  # offline: no pull answered for silent_after_s
    RENEW_FAILED = "renew_failed"  # offline: camera refused Renew or it ran out unrenewed
    AUTH_FAILED = "auth_failed"  # offline
    UNREACHABLE = "unreachable"  # offline
    PROTOCOL_ERROR = "protocol_error"  # offline


class SubscriptionLost(Exception):
    def __init__(self, reason: HealthReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class CameraStatus:
    """What ``OnvifCameraManager.status()`` reports per camera."""

    camera_id: str
    state: HealthState = HealthState.CONNECTING
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_event_at: datetime | None = None
    online_since: datetime | None = None
    clock_offset_s: float | None = None  # camera clock minus gateway clock
    subscription_expires_at: datetime | None = None  # gateway clock
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    events: int = 0
    unknown_topics: int = 0
    ignored: int = 0
    renewals: int = 0
    subscriptions: int = 0
    addresses_rewritten: int = 0
    recent_unknown: list[str] = field(default_factory=list)


def _chain(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(out) < 8:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def classify(exc: BaseException) -> tuple[HealthState, str]:
    """The health state an exception means, and a short message naming the cause."""
    chain = _chain(exc)
    for err in chain:
        if isinstance(err, ONVIFAuthError) or (
            isinstance(err, zeep.exceptions.Fault) and is_auth_error(err)
        ):
            return HealthState.AUTH_FAILED, (
                "authentication refused: check username/password (the camera's clock offset "
                f"is corrected automatically): {_text(err)}"
            )
    for err in chain:
        if isinstance(err, ForeignHostRefused):
            return HealthState.PROTOCOL_ERROR, str(err)
        if isinstance(err, ResponseTooLarge):
            return HealthState.PROTOCOL_ERROR, f"oversized answer: {err}"
        if isinstance(err, UnsafeXml):
            return HealthState.PROTOCOL_ERROR, f"unsafe XML refused (DTD/entities): {err}"
        if isinstance(err, MalformedXml):
            return HealthState.PROTOCOL_ERROR, f"malformed SOAP: {err}"
        if isinstance(err, zeep.exceptions.DTDForbidden | zeep.exceptions.EntitiesForbidden):
            return HealthState.PROTOCOL_ERROR, f"unsafe XML refused (DTD/entities): {_text(err)}"
        if isinstance(
            err,
            zeep.exceptions.XMLSyntaxError | zeep.exceptions.XMLParseError | etree.XMLSyntaxError,
        ):
            return HealthState.PROTOCOL_ERROR, f"malformed SOAP: {_text(err)}"
        if isinstance(err, zeep.exceptions.Fault):
            return HealthState.PROTOCOL_ERROR, f"SOAP fault: {_text(err)}"
    for err in chain:
        if isinstance(err, ONVIFTimeoutError | TimeoutError | asyncio.TimeoutError):
            return HealthState.UNREACHABLE, f"timed out: {_text(err)}"
        if isinstance(err, aiohttp.ClientError | OSError | zeep.exceptions.TransportError):
            return HealthState.UNREACHABLE, f"cannot reach camera: {_text(err)}"
    for err in chain:
        if isinstance(err, zeep.exceptions.Error | ONVIFError | AttributeError | ValueError):
            return HealthState.PROTOCOL_ERROR, f"unexpected answer: {_text(err)}"
    return HealthState.PROTOCOL_ERROR, f"{type(exc).__name__}: {_text(exc)}"


def _text(err: BaseException) -> str:
    text = stringify_onvif_error(err) if isinstance(err, Exception) else repr(err)
    return (text or type(err).__name__)[:300]


REASON_FOR_STATE = {
    HealthState.AUTH_FAILED: HealthReason.AUTH_FAILED,
    HealthState.UNREACHABLE: HealthReason.UNREACHABLE,
    HealthState.PROTOCOL_ERROR: HealthReason.PROTOCOL_ERROR,
}
