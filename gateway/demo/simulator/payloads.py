"""Lianfang device JSON v1 messages, as pure functions (see ``config/profiles/lianfang.yaml``).

::

    lianfang/<site>/<device>/event   {"v":1,"seq":N,"ts":"…+08:00","kind":…,"type":…,"attrs":{…}}
    lianfang/<site>/<device>/status  online | offline   (retained; also the MQTT will)

Attribute builders only emit keys the profile maps for that device kind, so every payload
normalises into a valid :class:`gateway.events.Event`. Random values take a ``random.Random``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from gateway.events import DeviceKind, Direction, EventType, PlateColour

VERSION = 1
CHINA_TZ = timezone(timedelta(hours=8), "CST")

AttrValue = str | int | float | bool
Attrs = dict[str, AttrValue]

STATUS_ONLINE = b"online"
STATUS_OFFLINE = b"offline"


def event_topic(site: str, device: str) -> str:
    return f"lianfang/{site}/{device}/event"


def status_topic(site: str, device: str) -> str:
    return f"lianfang/{site}/{device}/status"


def format_ts(ts: datetime) -> str:
    """ISO 8601 with milliseconds and the device's UTC offset (China: +08:00)."""
    if ts.tzinfo is None:
        raise ValueError("device timestamps carry an offset; got a naive datetime")
    return ts.isoformat(timespec="milliseconds")


def event_payload(
    seq: int,
    ts: datetime,
    kind: DeviceKind,
    type_: EventType,
    attrs: Mapping[str, AttrValue] | None = None,
) -> dict[str, object]:
    return {
        "v": VERSION,
        "seq": seq,
        "ts": format_ts(ts),
        "kind": kind.value,
        "type": type_.value,
        "attrs": dict(attrs or {}),
    }


def encode(payload: Mapping[str, object]) -> bytes:
    """Compact UTF-8 JSON (plates and names stay readable Chinese)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


# -- attributes per device kind -------------------------------------------------------------


def _put(attrs: Attrs, key: str, value: AttrValue | None) -> Attrs:
    if value is not None:
        attrs[key] = value
    return attrs


def access_attrs(
    door: str,
    direction: Direction | None = None,
    card: str | None = None,
    *,
    zone: str | None = None,
) -> Attrs:
    attrs: Attrs = {"door": door}
    _put(attrs, "direction", direction.value if direction else None)
    _put(attrs, "card", card)
    return _put(attrs, "zone", zone)


def gate_attrs(
    plate: str,
    colour: PlateColour,
    direction: Direction,
    confidence: float,
    *,
    lane: str | None = None,
    zone: str | None = None,
) -> Attrs:
    attrs: Attrs = {
        "plate": plate,
        "plate_colour": colour.value,
        "direction": direction.value,
        "confidence": round(confidence, 2),
    }
    _put(attrs, "lane", lane)
    return _put(attrs, "zone", zone)


def perimeter_attrs(
    zone: str | None, label: str, confidence: float, track: str | None = None
) -> Attrs:
    attrs: Attrs = {"label": label, "confidence": round(confidence, 2)}
    _put(attrs, "track", track)
    return _put(attrs, "zone", zone)


def alarm_attrs(household: str, *, button: str = "main", battery: int | None = None) -> Attrs:
    return _put({"household": household, "button": button}, "battery", battery)


def health_attrs(*, battery: int | None = None, zone: str | None = None) -> Attrs:
    """Heartbeat, tamper and battery_low carry at most battery and zone (any kind)."""
    return _put(_put({}, "battery", battery), "zone", zone)


# -- realistic identifiers ------------------------------------------------------------------

# Plate letters exclude I and O (confused with 1 and 0).
PLATE_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"
DIGITS = "0123456789"
LOCAL_PREFIX = "浙J"  # 台州
NEARBY_PREFIXES = ("浙A", "浙B", "浙C", "浙D", "浙G", "浙H", "浙K")
FAR_PREFIXES = ("沪A", "苏E", "皖B", "赣A", "闽C", "粤B", "甘A", "川A", "豫A", "鲁B")


def plate_prefix(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.78:
        return LOCAL_PREFIX
    if roll < 0.9:
        return rng.choice(NEARBY_PREFIXES)
    return rng.choice(FAR_PREFIXES)


def random_plate(rng: random.Random, colour: PlateColour, prefix: str | None = None) -> str:
    """A plate without the separator dot: ``浙JA12345`` (blue/yellow), ``浙JD12345`` (green)."""
    prefix = prefix or plate_prefix(rng)
    if colour is PlateColour.GREEN:  # new-energy: D (electric) or F (hybrid) + 5 characters
        second = rng.choice(DIGITS + PLATE_LETTERS)
        return prefix + rng.choice("DF") + second + "".join(rng.choices(DIGITS, k=4))
    body = list(rng.choices(DIGITS, k=5))
    for i in rng.sample(range(5), k=rng.choice((0, 1, 1, 2))):  # up to two letters
        body[i] = rng.choice(PLATE_LETTERS)
    return prefix + "".join(body)


def random_plate_colour(rng: random.Random) -> PlateColour:
    roll = rng.random()
    if roll < 0.68:
        return PlateColour.BLUE
    if roll < 0.95:
        return PlateColour.GREEN
    return PlateColour.YELLOW


def random_card(rng: random.Random) -> str:
    """A 10-digit access card number (Mifare UID printed in decimal)."""
    return f"{rng.randrange(10**9, 4 * 10**9):010d}"
