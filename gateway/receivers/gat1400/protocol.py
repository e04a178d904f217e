"""The GA/T 1400 objects this server reads and answers (GA/T 1400.4 HTTP interface).

Requests carry ``application/VIID+JSON``; the sender names itself in the ``User-Identify``
header after registering. Every answer is a ``ResponseStatusObject`` (or, for record lists,
a ``ResponseStatusListObject`` with one per record): ``StatusCode`` ``"0"`` for success.
Times are local ``YYYYMMDDhhmmss``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from gateway.ingest.reasons import Reason

MEDIA_TYPE = "application/VIID+JSON"
TIME_FORMAT = "%Y%m%d%H%M%S"
USER_IDENTIFY = "User-Identify"


class StatusCode(StrEnum):
    OK = "0"
    OTHER_ERROR = "1"
    DEVICE_BUSY = "2"
    DEVICE_ERROR = "3"
    INVALID_OPERATION = "4"
    INVALID_XML_FORMAT = "5"
    INVALID_XML_CONTENT = "6"
    INVALID_JSON_FORMAT = "7"
    INVALID_JSON_CONTENT = "8"
    REBOOT = "9"


STATUS_TEXT: dict[StatusCode, str] = {
    StatusCode.OK: "正常",
    StatusCode.OTHER_ERROR: "其他未知错误",
    StatusCode.DEVICE_BUSY: "设备忙",
    StatusCode.DEVICE_ERROR: "设备错",
    StatusCode.INVALID_OPERATION: "无效操作",
    StatusCode.INVALID_XML_FORMAT: "XML格式无效",
    StatusCode.INVALID_XML_CONTENT: "XML内容无效",
    StatusCode.INVALID_JSON_FORMAT: "JSON格式无效",
    StatusCode.INVALID_JSON_CONTENT: "JSON内容无效",
    StatusCode.REBOOT: "系统重启中",
}

# Body that could not be read as JSON at all; anything else wrong is wrong content.
_FORMAT_REASONS = frozenset(
    {
        Reason.MALFORMED_JSON,
        Reason.DUPLICATE_KEY,
        Reason.INVALID_UTF8,
        Reason.INVALID_TEXT,
        Reason.TOO_DEEP,
    }
)


def status_for(reason: Reason) -> StatusCode:
    """The ``StatusCode`` that says why a body or record was refused."""
    if reason in _FORMAT_REASONS:
        return StatusCode.INVALID_JSON_FORMAT
    if reason in (Reason.UNAUTHENTICATED, Reason.UNKNOWN_DEVICE):
        return StatusCode.INVALID_OPERATION
    return StatusCode.INVALID_JSON_CONTENT


@dataclass(frozen=True, slots=True)
class ObjectKind:
    """One kind of record list: URL, JSON keys, and the topic the ``gat1400`` profile reads
    its records under (``gat1400/<device>/<topic>``)."""

    path: str
    list_key: str
    item_key: str
    id_key: str
    topic: str


KINDS: dict[str, ObjectKind] = {
    k.path: k
    for k in (
        ObjectKind(
            "MotorVehicles",
            "MotorVehicleListObject",
            "MotorVehicleObject",
            "MotorVehicleID",
            "MotorVehicle",
        ),
        ObjectKind(
            "NonMotorVehicles",
            "NonMotorVehicleListObject",
            "NonMotorVehicleObject",
            "NonMotorVehicleID",
            "NonMotorVehicle",
        ),
        ObjectKind("Faces", "FaceListObject", "FaceObject", "FaceID", "Face"),
        ObjectKind("Persons", "PersonListObject", "PersonObject", "PersonID", "Person"),
    )
}


def local_time(now: datetime, zone: ZoneInfo) -> str:
    return now.astimezone(zone).strftime(TIME_FORMAT)


def status_object(
    url: str, code: StatusCode, *, object_id: str, local: str, detail: str = ""
) -> dict[str, Any]:
    """One ``ResponseStatusObject``; ``detail`` (English) follows the standard's text."""
    text = STATUS_TEXT[code] if not detail else f"{STATUS_TEXT[code]}: {detail}"
    return {
        "RequestURL": url,
        "StatusCode": code.value,
        "StatusString": text[:256],
        "Id": object_id,
        "LocalTime": local,
    }


def single(status: dict[str, Any]) -> dict[str, Any]:
    return {"ResponseStatusObject": status}


def status_list(statuses: list[dict[str, Any]]) -> dict[str, Any]:
    return {"ResponseStatusListObject": {"ResponseStatusObject": statuses}}


def system_time(server_id: str, local: str, zone: str) -> dict[str, Any]:
    """``GET /VIID/System/Time``: the server's clock for devices to follow."""
    return {
        "SystemTimeObject": {
            "VIIDServerID": server_id,
            "TimeMode": "1",
            "LocalTime": local,
            "TimeZone": zone,
        }
    }


def object_device_id(body: Any, key: str) -> str | None:
    """``DeviceID`` of ``{"<key>": {"DeviceID": …}}`` (Register, Keepalive, UnRegister)."""
    if not isinstance(body, dict):
        return None
    inner = body.get(key)
    if not isinstance(inner, dict):
        return None
    device_id = inner.get("DeviceID")
    return device_id if isinstance(device_id, str) and device_id else None
