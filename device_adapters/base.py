"""What every adapter — a YAML profile or a Python plug-in — does: message in, events out.

A Python adapter is the escape hatch when a device cannot be described as data. Register it
under the entry-point group ``lianfang.adapters``::

    [project.entry-points."lianfang.adapters"]
    acme_gate = "acme_lianfang.adapter:AcmeGateAdapter"

The class is instantiated without arguments and must satisfy :class:`Adapter`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from gateway.events import DeviceKind, Event


class NoMatch(Exception):
    """The message is not for this adapter / mapping; ``reason`` says why (for diagnostics)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MappingError(Exception):
    """The message is for this adapter but cannot become a valid event (a bad value)."""


@dataclass(frozen=True)
class Message:
    """One device message as received: topic, decoded payload and the exact bytes."""

    topic: str
    payload: Any  # decoded JSON (dict/list/scalar) or text, per the adapter's declared format
    raw: bytes
    received_at: datetime


@dataclass(frozen=True)
class DeviceInfo:
    """What the site registry knows of a device (filled in by the pipeline)."""

    site: str
    kind: DeviceKind
    labels: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class Adapter(Protocol):
    #: Unique name, used as the event ``source``.
    name: str

    def subscriptions(self) -> list[str]:
        """MQTT topic filters to subscribe to (``+``/``#`` wildcards)."""
        ...

    def accepts(self, topic: str) -> bool:
        """Whether this adapter handles the topic at all (cheap, no payload parsing)."""
        ...

    def payload_format(self, topic: str) -> str:
        """``json``, ``text`` or ``json_or_text``: how the pipeline decodes the payload."""
        ...

    def normalise(self, message: Message, lookup: DeviceLookup) -> list[Event]:
        """Events for this message, or raise :class:`NoMatch` / :class:`MappingError`."""
        ...


class DeviceLookup(Protocol):
    def __call__(self, device_id: str) -> DeviceInfo | None: ...
