"""What bench/failover.py counts, from plain rows: pure functions, unit-tested
(tests/test_failover_accounting.py).

- **Events**: every sent event id must be stored exactly once. ``lost``: sent, never stored;
  ``duplicates``: extra rows of one event id (a redelivery stored twice, which the event
  keys must prevent, across workers too); ``unexpected``: stored ids nobody sent.
- **Incidents**: one per (rule, group key, site, first event): a second one is a duplicate
  (two workers opening the same incident). Every panic press must be named by a panic
  incident.
- **Notifications**: a (incident, occasion, rung, recipient, channel) outbox row once, and
  on the wire a ``new`` notification once per (topic, incident): a second delivery is a
  duplicate (two workers sending the same row). Reminders repeat by design and are not
  counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

REPEATING_OCCASIONS = frozenset({"reminder"})


@dataclass(frozen=True)
class EventTally:
    sent: int
    stored: int
    lost: int
    duplicates: int
    unexpected: int
    lost_examples: tuple[str, ...]


def tally_events(sent: Iterable[str], stored: Iterable[str]) -> EventTally:
    """``sent``: event ids published (each once); ``stored``: the ``event_id`` of every
    stored row (a duplicate row appears twice)."""
    sent_set = set(sent)
    rows = Counter(stored)
    lost = sorted(sent_set - rows.keys())
    return EventTally(
        sent=len(sent_set),
        stored=sum(rows.values()),
        lost=len(lost),
        duplicates=sum(n - 1 for n in rows.values() if n > 1),
        unexpected=len(rows.keys() - sent_set),
        lost_examples=tuple(lost[:5]),
    )


@dataclass(frozen=True)
class IncidentTally:
    duplicate_incidents: int
    panic_incidents: int  # panic presses named by at least one panic incident
    panics_without_incident: tuple[str, ...]


def tally_incidents(
    incidents: Sequence[Mapping[str, Any]], panic_event_ids: Iterable[str]
) -> IncidentTally:
    """``incidents``: rows with ``rule_id``, ``group_key``, ``site``, ``category`` and
    ``event_ids`` (oldest first)."""
    keys: Counter[tuple[Any, ...]] = Counter()
    in_panic_incident: set[str] = set()
    for row in incidents:
        ids = list(row["event_ids"] or [])
        keys[(row["rule_id"], row["group_key"], row["site"], ids[0] if ids else None)] += 1
        if row["category"] == "panic":
            in_panic_incident.update(ids)
    panics = set(panic_event_ids)
    missing = sorted(panics - in_panic_incident)
    return IncidentTally(
        duplicate_incidents=sum(n - 1 for key, n in keys.items() if n > 1 and key[3] is not None),
        panic_incidents=len(panics) - len(missing),
        panics_without_incident=tuple(missing),
    )


def duplicate_notification_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Outbox rows beyond the first per (incident, occasion, level, recipient, channel), by
    occasion (empty: none)."""
    keys = Counter(
        (
            r["occasion"],
            r["incident_id"],
            r["level"],
            r["recipient_kind"],
            r["recipient_id"],
            r["channel"],
        )
        for r in rows
        if r["occasion"] not in REPEATING_OCCASIONS
    )
    by_occasion: Counter[str] = Counter()
    for key, n in keys.items():
        if n > 1:
            by_occasion[key[0]] += n - 1
    return dict(by_occasion)


def duplicate_deliveries(messages: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
    """MQTT notifications received (topic, payload) beyond the first ``new`` per topic and
    incident."""
    keys = Counter(
        (topic, body.get("incident_id"))
        for topic, body in messages
        if body.get("occasion") == "new"
    )
    return sum(n - 1 for n in keys.values() if n > 1)


def percentile_ms(values_s: Sequence[float], p: float) -> float | None:
    """The ``p`` quantile (nearest rank, as the other benchmarks) in milliseconds."""
    if not values_s:
        return None
    ordered = sorted(values_s)
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 1)


def during(published: Mapping[str, float], start: float, end: float) -> list[str]:
    """The presses published in [start, end] (wall-clock seconds)."""
    return [event_id for event_id, at in published.items() if start <= at <= end]
