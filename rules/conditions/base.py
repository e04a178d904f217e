"""What every condition state machine shares: event references, hits and the interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from gateway.events import EventType
from rules.context import Ctx
from rules.durations import format_duration


@dataclass(slots=True, frozen=True)
class Ref:
    """A remembered event: enough to list it in a signal and persist it."""

    event_id: str
    type: EventType
    device_id: str
    t: float  # event time, epoch seconds

    @classmethod
    def of(cls, c: Ctx) -> Ref:
        return cls(c.event.event_id, c.event.type, c.event.device_id, c.t)

    def dump(self) -> list[Any]:
        return [self.event_id, self.type.value, self.device_id, self.t]

    @classmethod
    def load(cls, data: list[Any]) -> Ref:
        return cls(str(data[0]), EventType(data[1]), str(data[2]), float(data[3]))


@dataclass(slots=True, frozen=True)
class Where:
    site: str | None
    zone: str | None
    device_id: str | None

    @classmethod
    def of(cls, c: Ctx) -> Where:
        return cls(c.event.site, c.zone, c.event.device_id)

    def dump(self) -> list[str | None]:
        return [self.site, self.zone, self.device_id]

    @classmethod
    def load(cls, data: list[Any]) -> Where:
        return cls(data[0], data[1], data[2])


@dataclass(slots=True)
class Hit:
    """A condition was satisfied (or, with ``resolve``, stopped being so) for one group."""

    group: str
    at: float  # event time of the deciding event, or the timer deadline
    refs: list[Ref]
    explanation: str
    where: Where
    ctx: Ctx | None = None  # the deciding event, for title templates
    resolve: bool = False
    extra: dict[str, object] = field(default_factory=dict)


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def dur(seconds: float) -> str:
    return format_duration(seconds)


class ConditionState(ABC):
    """State of one rule's condition. ``low`` is the watermark minus the late tolerance: no
    event older than that will be accepted any more, so state before it can be pruned."""

    timer = False  # whether advance() can fire

    @abstractmethod
    def on_event(self, role: int, c: Ctx, key: str, low: float) -> Hit | None: ...

    def advance(self, now: float) -> list[Hit]:
        return []

    def prune(self, low: float) -> None:  # noqa: B027 - optional hook
        pass

    def size(self) -> int:
        return 0

    def hold(self, site: str, until: float) -> int:
        """A site just rebuilt from its stored events (rules.rebuild): its timers that came
        due while nobody owned it wait until ``until`` (clock time) before firing — the
        messages that would have stopped them may still be queued at the broker. They fire
        with the deadline they had. Returns how many groups were held."""
        return 0

    def forget_device(self, device_id: str) -> int:
        """Drop the timer state of groups last heard from ``device_id`` (a device removed
        from the registry must not go "offline"); only called for rules grouped by device.
        Returns how many groups were dropped."""
        return 0

    def snapshot(self) -> dict[str, Any]:
        return {}

    def restore(self, data: dict[str, Any], now: float, grace: float) -> None:  # noqa: B027
        pass
