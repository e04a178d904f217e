"""Per-event evaluation context: the event plus lazily computed device labels, zone and names."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.events import Event

LabelLookup = Callable[[str], Mapping[str, str] | None]
"""Device id → device labels (place, zone, household, camera, kind, ...); None if unknown."""

_NO_LABELS: Mapping[str, str] = {}


class Ctx:
    """One event as rules see it. Created once per event; expensive parts are computed on demand."""

    __slots__ = ("_labels", "_local", "_lookup", "_names", "_tz", "event", "rt", "t")

    def __init__(self, event: Event, lookup: LabelLookup | None, tz: ZoneInfo) -> None:
        self.event = event
        self.t = event.occurred_at.timestamp()  # event time, epoch seconds
        self.rt = event.received_at.timestamp()  # gateway time, epoch seconds
        self._lookup = lookup
        self._tz = tz
        self._labels: Mapping[str, str] | None = None
        self._local: datetime | None = None
        self._names: dict[str, Any] | None = None

    @property
    def labels(self) -> Mapping[str, str]:
        if self._labels is None:
            found = self._lookup(self.event.device_id) if self._lookup is not None else None
            labels = found if found is not None else _NO_LABELS
            # A device serving several households (an alarm panel: one zone per household)
            # names the household per event; it locates the incident like a button's label.
            household = getattr(self.event.attributes, "household", None)
            if household and "household" not in labels:
                labels = {**labels, "household": household}
            self._labels = labels
        return self._labels

    @property
    def zone(self) -> str | None:
        """The event's zone attribute, else the device's registered zone."""
        return self.event.attributes.zone or self.labels.get("zone")

    @property
    def local(self) -> datetime:
        if self._local is None:
            self._local = self.event.occurred_at.astimezone(self._tz)
        return self._local

    def names(self) -> dict[str, Any]:
        """Names visible to ``expr`` predicates (see docs/rules.md); built once per event."""
        if self._names is not None:
            return self._names
        ev = self.event
        self._names = {
            "kind": ev.kind.value,
            "type": ev.type.value,
            "site": ev.site,
            "device_id": ev.device_id,
            "zone": self.zone,
            "attributes": ev.attributes,
            "extra": ev.attributes.extra,
            "device": self.labels,
            "hour": self.local.hour,
            "weekday": self.local.isoweekday(),
        }
        return self._names
