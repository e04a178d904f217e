"""Validated filters for the listings and the live stream.

Built from query parameters by ``gateway.api.deps``; applied as SQL ``WHERE`` clauses by
``gateway.api.queries`` and as a predicate on live bus events by ``gateway.api.live``.
All datetimes here are timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.events import DeviceKind, Event, EventType
from gateway.ingest.reasons import Reason


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events to show. An empty tuple means "any"."""

    sites: tuple[str, ...] = ()
    device_ids: tuple[str, ...] = ()
    kinds: tuple[DeviceKind, ...] = ()
    types: tuple[EventType, ...] = ()
    since: datetime | None = None  # occurred_at >= since
    until: datetime | None = None  # occurred_at < until

    def matches(self, event: Event) -> bool:
        return (
            (not self.sites or event.site in self.sites)
            and (not self.device_ids or event.device_id in self.device_ids)
            and (not self.kinds or event.kind in self.kinds)
            and (not self.types or event.type in self.types)
            and (self.since is None or event.occurred_at >= self.since)
            and (self.until is None or event.occurred_at < self.until)
        )


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    sites: tuple[str, ...] = ()
    kinds: tuple[DeviceKind, ...] = ()
    online: bool | None = None


@dataclass(frozen=True, slots=True)
class QuarantineFilter:
    reasons: tuple[Reason, ...] = ()
    device_ids: tuple[str, ...] = ()
    since: datetime | None = None  # received_at >= since
    until: datetime | None = None  # received_at < until


@dataclass(frozen=True, slots=True)
class PageRequest:
    """``after`` is the decoded cursor: the key of the last item of the previous page."""

    limit: int = 100
    after: int | str | None = None
