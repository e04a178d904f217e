"""A ``…ListObject`` body to intake records: one JSON document per record for the ``gat1400``
profile (pictures and personal free text left out), and the pictures apart.

Pictures are ``SubImageList.SubImageInfoObject[]`` with base64 ``Data`` (GA/T 1400.3:
``Type`` 01 vehicle, 02 plate, 11 face, 14 scene, …; ``ShotTime``); pictures given only by
``StoragePath`` (a URL on the device) are not fetched: the gateway never follows addresses
a device hands it.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.ingest.reasons import Reason
from gateway.receivers.gat1400.protocol import TIME_FORMAT, ObjectKind
from gateway.receivers.httppush.errors import Refused
from gateway.receivers.httppush.intake import PushImage, PushRecord

# Free text naming a person, and bulky vectors: never stored with the event. An identity
# number the profile maps (IDNumber) is kept: the profile engine hashes it and masks it in
# the stored raw payload, like card numbers.
_LEFT_OUT = frozenset(
    {"SubImageList", "FeatureList", "Name", "UsedName", "Alias", "PhoneNumber", "Description"}
)


@dataclass(frozen=True, slots=True)
class Item:
    """One record of a list, ready for the intake."""

    record_id: str
    device_id: str
    record: PushRecord


def list_items(body: Any, kind: ObjectKind, *, max_records: int) -> list[dict[str, Any]]:
    """The records of ``{"<list_key>": {"<item_key>": [...]}}`` (a single object tolerated)."""
    if not isinstance(body, dict) or not isinstance(body.get(kind.list_key), dict):
        raise Refused(400, Reason.MALFORMED_BODY, f"expected a {kind.list_key} object")
    items = body[kind.list_key].get(kind.item_key)
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list) or not items:
        raise Refused(400, Reason.MALFORMED_BODY, f"{kind.list_key} has no {kind.item_key} records")
    if len(items) > max_records:
        raise Refused(413, Reason.OVERSIZE, f"{len(items)} records > limit {max_records}")
    if not all(isinstance(i, dict) for i in items):
        raise Refused(400, Reason.MALFORMED_BODY, f"every {kind.item_key} must be an object")
    return items


def to_item(
    raw: dict[str, Any], kind: ObjectKind, *, sender: str, zone: ZoneInfo, max_image_bytes: int
) -> Item:
    """One record: its device (``DeviceID``, else the sender), its id, document and pictures."""
    device_id = raw.get("DeviceID") if isinstance(raw.get("DeviceID"), str) else None
    device_id = device_id or sender
    record_id = raw.get(kind.id_key)
    record_id = record_id if isinstance(record_id, str | int) else ""
    document = {k: v for k, v in raw.items() if k not in _LEFT_OUT}
    payload = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    topic = f"gat1400/{device_id}/{kind.topic}"
    images = _images(raw.get("SubImageList"), zone, max_image_bytes)
    return Item(str(record_id)[:128], device_id, PushRecord(topic, payload, images))


def _images(sub_images: Any, zone: ZoneInfo, max_bytes: int) -> list[PushImage]:
    if not isinstance(sub_images, dict):
        return []
    infos = sub_images.get("SubImageInfoObject")
    if isinstance(infos, dict):
        infos = [infos]
    if not isinstance(infos, list):
        return []
    out: list[PushImage] = []
    for info in infos:
        if not isinstance(info, dict) or not isinstance(info.get("Data"), str):
            continue
        data = info["Data"]
        if len(data) > max_bytes * 4 // 3 + 4:  # too large once decoded: not even decoded
            out.append(PushImage(_name(info), b"", problem=f"more than {max_bytes} bytes"))
            continue
        try:
            jpeg = base64.b64decode("".join(data.split()), validate=True)
        except (binascii.Error, ValueError):
            out.append(PushImage(_name(info), b"", problem="Data is not base64"))
            continue
        if not jpeg:
            continue  # an empty Data: no picture
        out.append(PushImage(_name(info), jpeg, _shot_time(info.get("ShotTime"), zone)))
    return out


def _name(info: dict[str, Any]) -> str:
    kind = info.get("Type")
    return f"type {kind}" if isinstance(kind, str | int) else "picture"


def _shot_time(value: Any, zone: ZoneInfo) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value[:14], TIME_FORMAT).replace(tzinfo=zone)
    except ValueError:
        return None
