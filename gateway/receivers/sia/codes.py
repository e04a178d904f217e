"""Contact ID (ADM-CID) and SIA-DCS event codes → the gateway's event types.

What the issue names, at least: panic 120/121/122 and PA/HA; burglary 130–134; fire 110–118;
tamper 137/144/145; trouble 300–309 (AC loss, low battery); opening/closing 401–407 as
routine (armed/disarmed); test 602 as a heartbeat. A restore (Contact ID qualifier 3, SIA
``xR``) of an alarm or a trouble is a ``restore`` event: it never cancels a panic.
Anything else is an unknown code: the receiver answers DUH and quarantines it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gateway.events import EventType

_CID = re.compile(r"^([136])([0-9]{3}) ?([0-9A-Fa-f]{2}) ?([0-9A-Fa-f]{3})$")
_SIA_MODIFIER = re.compile(r"^(?:ti([0-9]{2}:[0-9]{2})|(id|ri|pi)([0-9]{1,4}))")
_SIA_EVENT = re.compile(r"^([A-Z]{2})([0-9]{0,4})(?:\^([^\^]{0,64})\^?)?$")


class UnknownCode(Exception):
    """An event code (or data block) the receiver does not understand."""


@dataclass(frozen=True, slots=True)
class PanelEvent:
    """One event of a panel message, before it becomes an ``Event``."""

    type: EventType
    code: str  # "1120" (Contact ID: qualifier + event) or "PA" (SIA-DCS)
    label: str  # what the code means, in English
    zone: str | None = None
    user: str | None = None
    partition: str | None = None
    text: str | None = None


# Contact ID event codes (the three digits) → (type, label). Ranges first, singles override.
_CID_RANGES: list[tuple[range, EventType, str]] = [
    (range(100, 102), EventType.PANIC, "medical / personal emergency"),
    (range(110, 119), EventType.FIRE, "fire"),
    (range(120, 127), EventType.PANIC, "panic"),
    (range(130, 140), EventType.INTRUSION, "burglary"),
    (range(140, 150), EventType.ALARM_INPUT, "general alarm"),
    (range(150, 170), EventType.ALARM_INPUT, "24-hour non-burglary"),
    (range(200, 300), EventType.TROUBLE, "fire supervisory"),
    (range(300, 400), EventType.TROUBLE, "system trouble"),
    (range(500, 600), EventType.TROUBLE, "zone or function bypassed / disabled"),
    (range(601, 604), EventType.HEARTBEAT, "test report"),
]
_CID_SINGLE: dict[int, tuple[EventType, str]] = {
    110: (EventType.FIRE, "fire"),
    111: (EventType.FIRE, "smoke"),
    113: (EventType.FIRE, "water flow"),
    114: (EventType.FIRE, "heat"),
    115: (EventType.FIRE, "pull station"),
    120: (EventType.PANIC, "panic"),
    121: (EventType.PANIC, "duress"),
    122: (EventType.PANIC, "silent panic"),
    123: (EventType.PANIC, "audible panic"),
    131: (EventType.INTRUSION, "perimeter burglary"),
    132: (EventType.INTRUSION, "interior burglary"),
    133: (EventType.INTRUSION, "24-hour burglary"),
    134: (EventType.INTRUSION, "entry/exit burglary"),
    137: (EventType.TAMPER, "tamper"),
    144: (EventType.TAMPER, "sensor tamper"),
    145: (EventType.TAMPER, "expansion module tamper"),
    301: (EventType.TROUBLE, "AC power loss"),
    302: (EventType.BATTERY_LOW, "low system battery"),
    309: (EventType.BATTERY_LOW, "battery test failure"),
    384: (EventType.BATTERY_LOW, "RF transmitter low battery"),
    602: (EventType.HEARTBEAT, "periodic test report"),
    608: (EventType.TROUBLE, "periodic test, trouble present"),
}
_OPEN_CLOSE = range(400, 410)  # qualifier 1 = opening (disarmed), 3 = closing (armed)
_RESTORABLE = {
    EventType.PANIC,
    EventType.FIRE,
    EventType.INTRUSION,
    EventType.TAMPER,
    EventType.ALARM_INPUT,
    EventType.TROUBLE,
    EventType.BATTERY_LOW,
}


def _cid_type(event: int) -> tuple[EventType, str] | None:
    if event in _CID_SINGLE:
        return _CID_SINGLE[event]
    for numbers, type_, label in _CID_RANGES:
        if event in numbers:
            return type_, label
    return None


def contact_id(data: str) -> list[PanelEvent]:
    """``QEEE GG ZZZ``: qualifier, event, partition, zone (or user for open/close)."""
    m = _CID.match(data.strip())
    if m is None:
        raise UnknownCode(f"not a Contact ID block: {data[:40]!r}")
    qualifier, event_text, partition, point = m.groups()
    event = int(event_text)
    code = qualifier + event_text
    if event in _OPEN_CLOSE:
        opened = qualifier == "1"
        return [
            PanelEvent(
                EventType.DISARMED if opened else EventType.ARMED,
                code,
                "opening (disarmed)" if opened else "closing (armed)",
                user=point,
                partition=partition,
            )
        ]
    found = _cid_type(event)
    if found is None:
        raise UnknownCode(f"Contact ID event {event_text} is not mapped")
    type_, label = found
    if qualifier == "3" and type_ in _RESTORABLE:
        type_, label = EventType.RESTORE, f"restore: {label}"
    user = point if event in (121, 124, 125) else None  # duress reports the user
    return [
        PanelEvent(type_, code, label, zone=None if user else point, user=user, partition=partition)
    ]


# SIA-DCS two-letter codes. First letter families, second letter A (alarm), R (restore),
# T (trouble), … Only the codes named here are taken; others are unknown.
_SIA: dict[str, tuple[EventType, str]] = {
    "PA": (EventType.PANIC, "panic alarm"),
    "HA": (EventType.PANIC, "holdup (duress) alarm"),
    "MA": (EventType.PANIC, "medical alarm"),
    "QA": (EventType.PANIC, "emergency alarm"),
    "PR": (EventType.RESTORE, "restore: panic"),
    "HR": (EventType.RESTORE, "restore: holdup"),
    "MR": (EventType.RESTORE, "restore: medical"),
    "QR": (EventType.RESTORE, "restore: emergency"),
    "FA": (EventType.FIRE, "fire alarm"),
    "FR": (EventType.RESTORE, "restore: fire"),
    "FT": (EventType.TROUBLE, "fire trouble"),
    "BA": (EventType.INTRUSION, "burglary alarm"),
    "BR": (EventType.RESTORE, "restore: burglary"),
    "BT": (EventType.TROUBLE, "burglary trouble"),
    "BB": (EventType.TROUBLE, "burglary bypass"),
    "BU": (EventType.RESTORE, "restore: burglary unbypass"),
    "TA": (EventType.TAMPER, "tamper alarm"),
    "TR": (EventType.RESTORE, "restore: tamper"),
    "ES": (EventType.TAMPER, "expansion device tamper"),
    "AT": (EventType.TROUBLE, "AC power trouble"),
    "AR": (EventType.RESTORE, "restore: AC power"),
    "YT": (EventType.BATTERY_LOW, "system battery trouble"),
    "YM": (EventType.BATTERY_LOW, "system battery missing"),
    "YR": (EventType.RESTORE, "restore: system battery"),
    "XT": (EventType.BATTERY_LOW, "transmitter battery trouble"),
    "XR": (EventType.RESTORE, "restore: transmitter battery"),
    "YP": (EventType.TROUBLE, "power supply trouble"),
    "YQ": (EventType.RESTORE, "restore: power supply"),
    "OP": (EventType.DISARMED, "opening (disarmed)"),
    "OA": (EventType.DISARMED, "automatic opening"),
    "OR": (EventType.DISARMED, "disarm from alarm"),
    "OG": (EventType.DISARMED, "area opening"),
    "OC": (EventType.DISARMED, "cancel"),
    "CL": (EventType.ARMED, "closing (armed)"),
    "CA": (EventType.ARMED, "automatic closing"),
    "CG": (EventType.ARMED, "area closing"),
    "RP": (EventType.HEARTBEAT, "automatic test"),
    "RX": (EventType.HEARTBEAT, "manual test"),
    "RY": (EventType.HEARTBEAT, "exit manual test"),
}
_USER_CODES = {"OP", "OA", "OR", "OG", "OC", "CL", "CA", "CG", "HA"}


def sia_dcs(data: str) -> list[PanelEvent]:
    """``N[modifiers/]CCnnn[^text^][/…]``: one or more events, with area (``ri``), user
    (``id``), time (``ti``) modifiers that hold for the events after them."""
    text = data.strip()
    if text[:1] in ("N", "O"):  # new / old event block
        text = text[1:]
    if not text:
        raise UnknownCode("SIA-DCS block without events")
    events: list[PanelEvent] = []
    partition: str | None = None
    user: str | None = None
    for segment in text.split("/"):
        while (m := _SIA_MODIFIER.match(segment)) is not None:
            if m.group(2) == "ri":
                partition = m.group(3)
            elif m.group(2) == "id":
                user = m.group(3)
            segment = segment[m.end() :]
        if not segment:
            continue
        m = _SIA_EVENT.match(segment)
        if m is None:
            raise UnknownCode(f"not a SIA-DCS event: {segment[:40]!r}")
        code, number, note = m.groups()
        if code not in _SIA:
            raise UnknownCode(f"SIA code {code} is not mapped")
        type_, label = _SIA[code]
        number = number or None
        by_user = code in _USER_CODES
        events.append(
            PanelEvent(
                type_,
                code,
                label,
                zone=None if by_user else number,
                user=(number or user) if by_user else user,
                partition=partition,
                text=note,
            )
        )
        if len(events) > 32:
            raise UnknownCode("more than 32 events in one block")
    if not events:
        raise UnknownCode("SIA-DCS block without events")
    return events
