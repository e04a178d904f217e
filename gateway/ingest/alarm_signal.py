"""The P1 alarm of a panic nobody could file under a registered device: an unregistered
device's press, or an unreadable message that looks like one — its ids, the signal the
incident service stores and routes, and what its quarantine record says
(``gateway.ingest.unregistered`` plans and raises them)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gateway.events import EventType
from gateway.privacy import redact_identifiers
from rules.model import Category, Severity
from rules.signal import Signal, SignalEvent

RULE_ID = "unregistered_device_panic"
REGISTERED_LABEL = "device.registered"  # "false" on these incidents (routing matches it)
UNREADABLE_LABEL = "message.readable"  # "false" on a panic read from an unreadable message
FLOOD_GROUP = "flood"
FLOOD_SIGNAL_EVERY_S = 10
RAW_IN_INCIDENT = 2000  # characters of the raw message in the incident's description
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@dataclass(frozen=True, slots=True)
class UnregisteredPanic:
    """One panic from an unregistered device, for one site."""

    alarm_id: str  # stable per message and site: the signal's event id
    site: str
    site_named: bool  # False: the message named no site of this gateway (every site is told)
    device_id: str
    source: str  # profile or protocol: "zigbee2mqtt", "lianfang", "sia-dc09", …
    origin: str  # where it came from: MQTT topic, peer address, SIP URI
    raw: bytes
    detail: str
    received_at: datetime
    coalesced: int = 0  # a flood signal: presses it stands for (0: an ordinary one)
    unreadable: bool = False  # a message no profile could read that looks like a panic


def alarm_id(source: str, origin: str, device_id: str, raw: bytes, site: str) -> str:
    digest = hashlib.blake2b(digest_size=12)
    for part in (source, origin, device_id):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    digest.update(raw)
    return f"unregistered:{digest.hexdigest()}@{site[:64]}"


def raw_text(raw: bytes, limit: int = RAW_IN_INCIDENT) -> str:
    """The raw message as readable text: UTF-8, control characters escaped, bounded,
    phone and ID-card numbers masked."""
    text = raw[: limit * 4].decode("utf-8", "backslashreplace")
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    cut = len(text) > limit
    return redact_identifiers(text[:limit]) + (" …" if cut else "")


def panic_signal(alarm: UnregisteredPanic) -> Signal:
    """The P1 signal of one alarm (the incident service stores and routes it)."""
    device = alarm.device_id[:128]
    flood = alarm.coalesced > 0
    labels = {
        REGISTERED_LABEL: "false",
        "team": "police",
        "unregistered.source": alarm.source[:64],
        "unregistered.origin": alarm.origin[:200],
    }
    where = (
        ""
        if alarm.site_named
        else "消息未指明本网关的小区，已通知所有小区 / the message names no site of this gateway: "
        "every site is told. "
    )
    if flood:
        title_zh = "未登记设备报警过多：疑似批量伪造或设备故障"
        title_en = "Many panics from unregistered devices: flood or faulty devices"
        what = (
            f"本分钟内未登记设备报警超过限额，{alarm.coalesced} 次按下合并于此 / more unregistered "
            f"panics than the limit: {alarm.coalesced} presses counted here, latest from {device!r}. "
        )
    elif alarm.unreadable:
        title_zh = f"无法解读的报警消息：{device}"
        title_en = f"Unreadable message that looks like a panic: {device}"
        what = (
            "一条无法解读的消息看起来是一键报警，请核实现场并检查设备配置 / a message no "
            "profile could read looks like a panic press: check on site, then the device's "
            "profile. "
        )
        del labels[REGISTERED_LABEL]  # the device may well be registered: its message is not
        labels[UNREADABLE_LABEL] = "false"
    else:
        title_zh = f"未登记设备一键报警：{device}"
        title_en = f"Panic from an unregistered device: {device}"
        what = (
            f"设备 {device!r} 不在设备登记表中，请核实位置并登记 / device {device!r} is not in "
            "the registry: find where it is, and register it. "
        )
    explanation = (
        f"{what}{where}来源 / via {alarm.source} ({alarm.origin[:200]}); {alarm.detail[:300]}. "
        f"原始消息 / raw message: {raw_text(alarm.raw)}"
    )
    return Signal(
        signal_id=f"{RULE_ID}:{alarm.alarm_id}",
        kind="new",
        rule_id=RULE_ID,
        severity=Severity.P1,
        category=Category.PANIC,
        title_zh=title_zh,
        title_en=title_en,
        group_key=FLOOD_GROUP if flood else device,
        events=[
            SignalEvent(
                event_id=alarm.alarm_id,
                type=EventType.PANIC,
                device_id=device,
                occurred_at=alarm.received_at,
            )
        ],
        event_count=max(alarm.coalesced, 1),
        site=alarm.site,
        device_id=device,
        labels=labels,
        explanation=explanation,
        fired_at=alarm.received_at,
    )


def panic_note(alarms: Sequence[UnregisteredPanic]) -> str:
    """What the quarantine record of a panic says about its incidents."""
    if not alarms:
        return "panic: held back by the flood limit (counted in the next flood incident)"
    return (
        f"panic: P1 incident raised (unregistered device) for {', '.join(a.site for a in alarms)}"
    )
