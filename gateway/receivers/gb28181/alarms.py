"""GB/T 28181-2016 alarm notifications → the gateway's event types.

``AlarmMethod`` (9.4 / A.2.5.3): 1 telephone, 2 device, 3 SMS, 4 GPS, 5 video, 6 device fault,
7 other. ``AlarmType`` (in ``Info``) refines methods 2, 5 and 6. A device registered with
kind ``alarm`` (a one-button alarm column, 一键报警柱) reports a panic for any alarm except
device faults, tamper and video loss.
"""

from __future__ import annotations

from gateway.events import DeviceKind, EventType

# (method, type) → (event type, label); (method, None) is the method's default.
_TABLE: dict[tuple[int, int | None], tuple[EventType, str]] = {
    (1, None): (EventType.ALARM_INPUT, "telephone alarm"),
    (2, None): (EventType.ALARM_INPUT, "device alarm"),
    (2, 1): (EventType.VIDEO_LOSS, "video loss"),
    (2, 2): (EventType.TAMPER, "device tamper"),
    (2, 3): (EventType.TROUBLE, "storage full"),
    (2, 4): (EventType.TROUBLE, "device over-temperature"),
    (2, 5): (EventType.TROUBLE, "device under-temperature"),
    (3, None): (EventType.ALARM_INPUT, "SMS alarm"),
    (4, None): (EventType.ALARM_INPUT, "GPS alarm"),
    (5, None): (EventType.ALARM_INPUT, "video alarm"),
    (5, 1): (EventType.ALARM_INPUT, "manual video alarm"),
    (5, 2): (EventType.MOTION, "moving target detected"),
    (5, 3): (EventType.ALARM_INPUT, "object left behind"),
    (5, 4): (EventType.ALARM_INPUT, "object removed"),
    (5, 5): (EventType.LINE_CROSSING, "tripwire"),
    (5, 6): (EventType.INTRUSION, "intrusion"),
    (5, 7): (EventType.ALARM_INPUT, "wrong-way movement"),
    (5, 8): (EventType.ALARM_INPUT, "loitering"),
    (5, 9): (EventType.ALARM_INPUT, "flow count"),
    (5, 10): (EventType.ALARM_INPUT, "crowd density"),
    (5, 11): (EventType.TAMPER, "video anomaly"),
    (5, 12): (EventType.ALARM_INPUT, "fast movement"),
    (6, None): (EventType.TROUBLE, "device fault"),
    (6, 1): (EventType.TROUBLE, "storage disk fault"),
    (6, 2): (EventType.TROUBLE, "storage fan fault"),
    (7, None): (EventType.ALARM_INPUT, "other alarm"),
}
_NOT_PANIC = {EventType.TROUBLE, EventType.TAMPER, EventType.VIDEO_LOSS}


class UnknownAlarm(Exception):
    pass


def _number(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        return int(value.strip())
    except ValueError:
        raise UnknownAlarm(f"not a number: {value[:20]!r}") from None


def classify(
    method_text: str | None, type_text: str | None, kind: DeviceKind
) -> tuple[EventType, str]:
    """The event type for an alarm; ``UnknownAlarm`` when the method is missing or unknown."""
    method = _number(method_text)
    if method is None:
        raise UnknownAlarm("alarm without AlarmMethod")
    alarm_type = _number(type_text)
    found = _TABLE.get((method, alarm_type)) or _TABLE.get((method, None))
    if found is None:
        raise UnknownAlarm(f"AlarmMethod {method} is not defined by GB/T 28181-2016")
    type_, label = found
    if kind is DeviceKind.ALARM and type_ not in _NOT_PANIC:
        return EventType.PANIC, f"panic ({label})"
    return type_, label
