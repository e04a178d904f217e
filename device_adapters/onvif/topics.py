"""ONVIF notification → Lianfang events.

Every notification first becomes a plain :class:`Notification` (topic, time, operation,
Source and Data items). That is also the fixture format: an unknown topic is logged once per
camera as one JSON line that pastes into ``tests/onvif_fixtures/*.json``.

Which event type a topic means is one table, :data:`TOPICS`. Where ``onvif-parsers`` has a
parser for the topic (the same ones Home Assistant uses), it decides whether the state is
active; our own rules cover what it does not (AccessControl, Door). Only active states become
events (motion *started*, door *forced*); the return to normal is not an event.

Topics that onvif-parsers knows but that carry no security meaning (image too dark, CPU
usage, last reboot, …) are counted as *ignored*; topics nobody knows are *unknown* and go to
quarantine.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import SimpleNamespace
from typing import Any

import onvif_parsers
from onvif_parsers import registry as parser_registry

from gateway.events import DeviceKind, Event, EventType
from gateway.privacy import mask_tail, pseudonymise

SOURCE = "onvif"
MAX_ITEMS = 16
MAX_VALUE = 128
PII_ITEMS = frozenset(
    {"Card", "CardNumber", "CredentialHolderName", "CredentialToken", "CredentialIdentifier",
     "UserName", "User", "PersonName", "IdNumber", "Phone"}
)  # fmt: skip
FUTURE_SLACK = timedelta(hours=24)  # device times further off than this are not trusted


@dataclass(frozen=True)
class Notification:
    """One ONVIF notification message, as plain data."""

    topic: str
    utc_time: str | None = None  # ISO 8601 as sent (camera clock)
    operation: str | None = None  # Initialized / Changed / Deleted
    source: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_zeep(cls, msg: Any) -> Notification:
        """From a zeep ``NotificationMessage`` (PullMessages answer)."""
        topic = getattr(getattr(msg, "Topic", None), "_value_1", None)
        if not isinstance(topic, str) or not topic.strip():
            raise ValueError("notification without a topic")
        body = getattr(getattr(msg, "Message", None), "_value_1", None)
        utc = getattr(body, "UtcTime", None)
        if isinstance(utc, datetime):
            utc_text: str | None = (utc if utc.tzinfo else utc.replace(tzinfo=UTC)).isoformat()
        else:
            utc_text = str(utc) if utc is not None else None
        op = getattr(body, "PropertyOperation", None)
        return cls(
            topic=topic.strip().rstrip("/."),
            utc_time=utc_text,
            operation=str(op) if op is not None else None,
            source=_items(getattr(body, "Source", None)),
            data=_items(getattr(body, "Data", None)),
        )

    @classmethod
    def from_fixture(cls, data: dict[str, Any]) -> Notification:
        return cls(
            topic=str(data["topic"]),
            utc_time=data.get("utc_time"),
            operation=data.get("operation"),
            source={str(k): str(v) for k, v in (data.get("source") or {}).items()},
            data={str(k): str(v) for k, v in (data.get("data") or {}).items()},
        )

    def fixture(self, *, redact: bool = True) -> dict[str, Any]:
        """Plain-data form (personal items replaced by keyed references when ``redact``)."""

        def clean(items: dict[str, str]) -> dict[str, str]:
            if not redact:
                return dict(items)
            return {k: (pseudonymise(v, "pii") if k in PII_ITEMS else v) for k, v in items.items()}

        return {
            "topic": self.topic,
            "utc_time": self.utc_time,
            "operation": self.operation,
            "source": clean(self.source),
            "data": clean(self.data),
        }

    def fixture_json(self) -> str:
        return json.dumps(self.fixture(), ensure_ascii=False, sort_keys=True)

    def as_parser_message(self) -> Any:
        """A duck-typed zeep message for onvif-parsers (``msg.Topic._value_1``, …)."""

        def items(d: dict[str, str]) -> SimpleNamespace:
            return SimpleNamespace(
                SimpleItem=[SimpleNamespace(Name=k, Value=v) for k, v in d.items()],
                ElementItem=[],
            )

        body = SimpleNamespace(
            Source=items(self.source), Data=items(self.data), Key=None,
            UtcTime=self.utc_time, PropertyOperation=self.operation,
        )  # fmt: skip
        return SimpleNamespace(
            Topic=SimpleNamespace(_value_1=self.topic), Message=SimpleNamespace(_value_1=body)
        )


def _items(container: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in getattr(container, "SimpleItem", None) or []:
        name, value = getattr(item, "Name", None), getattr(item, "Value", None)
        if name is None or len(out) >= MAX_ITEMS:
            continue
        out[str(name)[:64]] = "" if value is None else str(value)[:MAX_VALUE]
    return out


_PREFIX = re.compile(r"^[A-Za-z_][\w.-]*:")


def topic_key(topic: str) -> str:
    """``tns1:RuleEngine/tnshik:X`` → ``RuleEngine/X``: namespace prefixes stripped."""
    return "/".join(_PREFIX.sub("", part) for part in topic.split("/"))


def parser_topic(topic: str) -> str:
    """The form onvif-parsers registers: the ONVIF root prefix spelled ``tns1``."""
    first, _, rest = topic.partition("/")
    first = "tns1:" + _PREFIX.sub("", first)
    return f"{first}/{rest}" if rest else first


class Outcome(StrEnum):
    EVENT = "event"
    INACTIVE = "inactive"  # a known topic returning to normal: no event
    IGNORED = "ignored"  # known, not security-relevant
    UNKNOWN = "unknown"
    INVALID = "invalid"  # known topic, message not understood


@dataclass(frozen=True)
class Rule:
    """What a topic means. ``active`` decides from the message when onvif-parsers cannot."""

    type: EventType | Callable[[Notification], EventType | None]
    kind: DeviceKind = DeviceKind.PERIMETER
    active: Callable[[Notification], bool] | None = None
    label: str | None = None


def _first_true(n: Notification) -> bool:
    values = list(n.data.values())
    return bool(values) and values[0].strip().lower() in ("true", "1", "on", "active")


def _always(n: Notification) -> bool:
    return True


def _door_alarm(n: Notification) -> EventType | None:
    state = n.data.get("State", "")
    return {"DoorForcedOpen": EventType.DOOR_FORCED_OPEN,
            "DoorOpenTooLong": EventType.DOOR_HELD_OPEN}.get(state)  # fmt: skip


def _door_physical(n: Notification) -> EventType | None:
    state = n.data.get("State", "")
    if state in ("Open", "Opened"):
        return EventType.DOOR_OPEN
    if state == "Closed":
        return EventType.DOOR_CLOSED
    return None


_ACCESS = DeviceKind.ACCESS
# Keys are topics without namespace prefixes. ``active=None``: onvif-parsers decides.
TOPICS: dict[str, Rule] = {
    # motion
    "RuleEngine/CellMotionDetector/Motion": Rule(EventType.MOTION),
    "RuleEngine/MotionRegionDetector/Motion": Rule(EventType.MOTION),
    "VideoSource/MotionAlarm": Rule(EventType.MOTION),
    "RuleEngine/CellMotionDetector/People": Rule(EventType.MOTION, label="person"),
    "RuleEngine/PeopleDetector/People": Rule(EventType.MOTION, label="person"),
    # intrusion
    "RuleEngine/FieldDetector/ObjectsInside": Rule(EventType.INTRUSION),
    "RuleEngine/CellMotionDetector/Intrusion": Rule(EventType.INTRUSION),
    # line crossing: every message is a crossing (Data ObjectId)
    "RuleEngine/LineDetector/Crossed": Rule(EventType.LINE_CROSSING, active=_always),
    "RuleEngine/CellMotionDetector/LineCross": Rule(EventType.LINE_CROSSING),
    "RuleEngine/LineCrossDetector/LineCross": Rule(EventType.LINE_CROSSING),
    # tamper
    "RuleEngine/TamperDetector/Tamper": Rule(EventType.TAMPER),
    "RuleEngine/CellMotionDetector/Tamper": Rule(EventType.TAMPER),
    "VideoSource/GlobalSceneChange/AnalyticsService": Rule(EventType.TAMPER),
    "VideoSource/GlobalSceneChange/ImagingService": Rule(EventType.TAMPER),
    "VideoSource/GlobalSceneChange/RecordingService": Rule(EventType.TAMPER),
    "VideoSource/SignalLoss": Rule(EventType.VIDEO_LOSS, active=_first_true),
    # digital / alarm inputs
    "Device/Trigger/DigitalInput": Rule(EventType.ALARM_INPUT),
    "Device/Trigger/AlarmIn": Rule(EventType.ALARM_INPUT),  # Hikvision tnshik:AlarmIn
    # doors (ONVIF Door Control)
    "Door/State/DoorAlarm": Rule(_door_alarm, _ACCESS, active=_always),
    "Door/State/DoorTamper": Rule(
        EventType.TAMPER, _ACCESS, active=lambda n: n.data.get("State") == "TamperDetected"
    ),
    "Door/State/DoorPhysicalState": Rule(_door_physical, _ACCESS, active=_always),
}
# ONVIF Access Control: AccessGranted/*, Denied/* (Anonymous, Credential, CredentialNotFound/…)
PREFIX_TOPICS: list[tuple[str, Rule]] = [
    ("AccessControl/AccessGranted", Rule(EventType.ACCESS_GRANTED, _ACCESS, active=_always)),
    ("AccessControl/Denied", Rule(EventType.ACCESS_DENIED, _ACCESS, active=_always)),
]


def rule_for(topic: str) -> Rule | None:
    key = topic_key(topic)
    rule = TOPICS.get(key)
    if rule is not None:
        return rule
    for prefix, candidate in PREFIX_TOPICS:
        if key == prefix or key.startswith(prefix + "/"):
            return candidate
    return None


@dataclass
class Normalised:
    outcome: Outcome
    events: list[Event] = field(default_factory=list)
    detail: str = ""


def device_time(n: Notification, offset: timedelta, received_at: datetime) -> datetime:
    """The message's UtcTime on the gateway's clock; ``received_at`` when absent or absurd."""
    if not n.utc_time:
        return received_at
    try:
        t = datetime.fromisoformat(n.utc_time.replace("Z", "+00:00"))
    except ValueError:
        return received_at
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    corrected = (t - offset).astimezone(UTC)
    if abs(corrected - received_at) > FUTURE_SLACK:
        return received_at
    return corrected


def event_id(camera_id: str, n: Notification) -> str:
    """Same camera, topic, time and items: same id (a redelivery is not a new event)."""
    basis = json.dumps(
        [
            camera_id,
            topic_key(n.topic),
            n.utc_time,
            sorted(n.source.items()),
            sorted(n.data.items()),
        ],
        ensure_ascii=False,
    )
    return "onvif-" + hashlib.sha256(basis.encode()).hexdigest()[:40]


async def _parser_active(n: Notification) -> bool | None:
    """onvif-parsers' reading of the state: None when it has no parser for the topic."""
    if parser_registry.get_parser(parser_topic(n.topic)) is None:
        return None
    entities = await onvif_parsers.parse(parser_topic(n.topic), SOURCE, n.as_parser_message())
    if not entities:
        raise ValueError("onvif-parsers found no state in the message")
    value = entities[0].value
    if isinstance(value, str):
        return value.strip().lower() not in ("", "false", "0")
    return bool(value)


async def normalise(
    n: Notification,
    *,
    camera_id: str,
    site: str,
    offset: timedelta,
    received_at: datetime,
    zone: str | None = None,
) -> Normalised:
    rule = rule_for(n.topic)
    if rule is None:
        if parser_registry.get_parser(parser_topic(n.topic)) is not None:
            return Normalised(Outcome.IGNORED, detail="known to onvif-parsers, not mapped")
        return Normalised(Outcome.UNKNOWN, detail=f"unknown ONVIF topic {n.topic!r}")
    if n.operation == "Deleted":
        return Normalised(Outcome.INACTIVE, detail="property deleted")
    try:
        if rule.active is not None:
            active = rule.active(n)
        else:
            parsed = await _parser_active(n)
            active = parsed if parsed is not None else _first_true(n)
        etype = rule.type(n) if callable(rule.type) else rule.type
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        return Normalised(Outcome.INVALID, detail=f"{n.topic}: message not understood: {exc!r}")
    if not active or etype is None:
        return Normalised(Outcome.INACTIVE)
    attributes = _attributes(rule, n, zone)
    event = Event(
        event_id=event_id(camera_id, n),
        occurred_at=device_time(n, offset, received_at),
        received_at=received_at,
        site=site,
        device_id=camera_id,
        kind=rule.kind,
        type=etype,
        attributes=attributes,
        source=SOURCE,
        raw=n.fixture_json()[:4096],
    )
    return Normalised(Outcome.EVENT, [event])


def _attributes(rule: Rule, n: Notification, zone: str | None) -> dict[str, Any]:
    extra: dict[str, str | int | float | bool | None] = {"topic": topic_key(n.topic)[:128]}
    if n.operation:
        extra["operation"] = n.operation
    attrs: dict[str, Any] = {"zone": zone}
    if rule.kind is DeviceKind.ACCESS:
        door = n.source.get("AccessPointToken") or n.source.get("DoorToken")
        attrs["door"] = door[:64] if door else None
        if cred := n.data.get("CredentialToken"):
            attrs["card_ref"] = pseudonymise(cred, "card")
        if card := n.data.get("Card") or n.data.get("CardNumber"):
            attrs["card_ref"] = pseudonymise(card, "card")
            attrs["card_masked"] = mask_tail(card)
        if holder := n.data.get("CredentialHolderName"):
            attrs["person_ref"] = pseudonymise(holder, "person")
        for name in ("Reason", "State"):
            if name in n.data:
                extra[name.lower()] = n.data[name][:MAX_VALUE]
    else:
        attrs["label"] = rule.label
        if object_id := n.data.get("ObjectId"):
            attrs["track_id"] = object_id[:64]
        attrs["phase"] = "start"
        for name in ("Rule", "VideoSourceConfigurationToken", "InputToken", "Source"):
            if name in n.source:
                extra[name[0].lower() + name[1:]] = n.source[name][:MAX_VALUE]
    attrs["extra"] = extra
    return attrs
