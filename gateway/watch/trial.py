"""What the running gateway would make of one message, without making it: the profile that
takes the topic, then the events, or the quarantine reason the gateway would give. Nothing
is stored, counted, logged or raised (``gateway.ingest.pipeline.Normaliser`` does that for
real messages, in the same order of checks)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from device_adapters.base import Adapter, DeviceLookup, MappingError, Message, NoMatch
from device_adapters.profiles.engine import UnknownDevice
from gateway.config.settings import IngestConfig
from gateway.events import Event, EventType
from gateway.ids import first_bad_device_id
from gateway.ingest.decode import Rejected, decode_payload
from gateway.ingest.reasons import Reason


def adapter_name(adapter: Adapter) -> str:
    return str(getattr(adapter, "name", type(adapter).__name__))


@dataclass(frozen=True, slots=True)
class Verdict:
    """``profile`` took the topic (None: no profile takes it) and made ``events``, or the
    gateway would quarantine the message with ``reason`` (a ``Reason`` value)."""

    profile: str | None
    reason: str | None = None
    detail: str = ""
    events: list[Event] = field(default_factory=list)
    accepting: list[str] = field(default_factory=list)  # every profile that takes the topic
    panic: bool = False  # an unregistered device's panic: raised as a P1 all the same

    @property
    def ok(self) -> bool:
        return self.reason is None

    def to_json(self) -> dict[str, Any]:
        return {
            "profile": self.profile,
            "ok": self.ok,
            "reason": self.reason,
            "detail": self.detail,
            "panic": self.panic,
            "accepting": self.accepting,
            "events": [
                {
                    "kind": e.kind.value,
                    "type": e.type.value,
                    "site": e.site,
                    "device_id": e.device_id,
                    "occurred_at": e.occurred_at.isoformat(),
                }
                for e in self.events
            ],
        }


def trial(
    adapter: Adapter,
    topic: str,
    raw: bytes,
    *,
    lookup: DeviceLookup,
    config: IngestConfig,
    received_at: datetime,
    accepting: Sequence[str] = (),
) -> Verdict:
    """``adapter``'s reading of the message, checked as the gateway checks it."""
    name = adapter_name(adapter)

    def refused(reason: Reason, detail: str, *, panic: bool = False) -> Verdict:
        return Verdict(name, reason.value, detail[:1000], accepting=list(accepting), panic=panic)

    try:
        payload = decode_payload(
            raw,
            adapter.payload_format(topic),
            max_bytes=config.max_payload_bytes,
            max_depth=config.max_json_depth,
        )
        events = adapter.normalise(Message(topic, payload, raw, received_at), lookup)
    except Rejected as exc:
        return refused(exc.reason, exc.detail)
    except UnknownDevice as exc:
        return refused(
            Reason.UNKNOWN_DEVICE, exc.reason, panic=EventType.PANIC.value in exc.event_types
        )
    except NoMatch as exc:
        return refused(Reason.NO_MATCH, exc.reason)
    except MappingError as exc:
        return refused(Reason.INVALID_EVENT, str(exc))
    except Exception as exc:  # a plug-in adapter's bug: the gateway quarantines it too
        return refused(Reason.ADAPTER_ERROR, repr(exc))
    panic = any(e.type is EventType.PANIC for e in events)
    if (bad := first_bad_device_id(e.device_id for e in events)) is not None:
        return refused(Reason.INVALID_DEVICE_ID, bad, panic=panic)
    if not config.accept_unknown_devices:
        for event in events:
            if lookup(event.device_id) is None:
                detail = f"device {event.device_id!r} is not in the site registry"
                return refused(Reason.UNKNOWN_DEVICE, detail, panic=panic)
    return Verdict(name, events=events, accepting=list(accepting), panic=panic)


def verdict_for(
    adapters: Sequence[Adapter],
    topic: str,
    raw: bytes,
    *,
    lookup: DeviceLookup,
    config: IngestConfig,
    received_at: datetime,
) -> Verdict:
    """The gateway's own choice: the first profile that takes the topic (as the normaliser
    picks it), or ``no_profile`` — a message no profile subscribes to, which the gateway
    never even receives."""
    taking = [a for a in adapters if a.accepts(topic)]
    if not taking:
        return Verdict(None, Reason.NO_PROFILE.value, "no profile takes this topic")
    names = [adapter_name(a) for a in taking]
    return trial(taking[0], topic, raw, lookup=lookup, config=config,
                 received_at=received_at, accepting=names)  # fmt: skip
