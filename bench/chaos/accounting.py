"""What a chaos run cost, counted by event id (pure: no I/O, unit-tested).

The publisher knows every event id it sent (``lianfang:<device>:<seq>``, seq unique in a run)
and which of them were panic presses; the database says which ids it holds (one entry per
stored row) and which event ids and device each panic incident has.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Tally:
    sent: int
    stored: int  # rows holding a sent id (a duplicate row counts twice)
    lost: int  # sent ids with no row
    duplicates: int  # rows beyond the first for an id
    panics_sent: int
    panic_incidents: int  # panic presses found in at least one incident
    duplicate_incidents: int  # panic presses found in more than one incident

    def as_dict(self) -> dict[str, int]:
        return {
            "sent": self.sent,
            "stored": self.stored,
            "lost": self.lost,
            "duplicates": self.duplicates,
            "panics_sent": self.panics_sent,
            "panic_incidents": self.panic_incidents,
            "duplicate_incidents": self.duplicate_incidents,
        }


def device_of(event_id: str) -> str:
    """The device of a ``<profile>:<device>:<seq>`` event id."""
    parts = event_id.split(":")
    return parts[1] if len(parts) == 3 else ""


def tally(
    sent_ids: Sequence[str],
    stored_ids: Iterable[str],
    panic_ids: Iterable[str],
    incidents: Iterable[tuple[Iterable[str], str | None]],
) -> Tally:
    """Count a run. ``stored_ids`` has one entry per database row (ids the publisher did not
    send, such as probes or status messages, are ignored); ``incidents`` one (event ids,
    device id) per panic incident. A press counts as an incident when an incident lists its
    event id, or, listing none of the presses, is of the press's button (a press the gateway
    could not read as an event, raised as a panic all the same: every button is pressed once
    in a run). A press counted by two incidents is a duplicate incident."""
    sent = set(sent_ids)
    if len(sent) != len(sent_ids):
        raise ValueError("the publisher sent an event id twice: ids must be unique in a run")
    rows = Counter(i for i in stored_ids if i in sent)
    panics = set(panic_ids)
    if not panics <= sent:
        raise ValueError("a panic id that was not sent")
    by_device = {device_of(p): p for p in panics}
    in_incidents: Counter[str] = Counter()
    for ids, device in incidents:
        listed = set(ids) & panics
        if not listed and device in by_device:
            listed = {by_device[device]}
        in_incidents.update(listed)
    return Tally(
        sent=len(sent),
        stored=sum(rows.values()),
        lost=len(sent) - len(rows),
        duplicates=sum(n - 1 for n in rows.values()),
        panics_sent=len(panics),
        panic_incidents=len(in_incidents),
        duplicate_incidents=sum(1 for n in in_incidents.values() if n > 1),
    )


def percentile_ms(seconds: Iterable[float], p: float) -> float | None:
    """Nearest-rank percentile of durations in seconds, in milliseconds (None: no values)."""
    ordered = sorted(seconds)
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 1)


def deliveries_twice(delivered: Counter[int] | dict[int, int]) -> int:
    """Notification ids a receiver accepted (2xx) more than once."""
    return sum(1 for n in delivered.values() if n > 1)
