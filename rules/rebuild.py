"""Rebuild a site's rule state from its stored events (a site taken over from another worker).

The engine keeps windows, sequences, absences, durations and cooldowns in memory. When a
worker takes a site over, it replays the site's stored events over the *horizon* — the
longest span any loaded rule looks back, plus the cooldown its signals hold, plus the late
tolerance — before the site's live traffic starts (docs/cluster.md, "Rule state across a
handover"):

- a sequence whose first step was stored on the old owner completes on the new one;
- a signal that fired on the old owner is fired again in the replay, with the same stable
  signal id (rule, group, anchor), so its group is open again here and its cooldown holds:
  a later hit in the cooldown is an update of it, not a second signal;
- replayed events are judged late only as they were on arrival, never against the
  watermark that other sites' live events have already moved (``Engine.process(rebuild=True)``).

The replay's signals are returned, not delivered: the caller delivers the new ones the incident
store does not have yet (the old owner died between storing the events and storing the
incident) and drops the rest. Events this engine has already evaluated are skipped by its
duplicate filter, so a site that comes back to a worker adds only what it missed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from gateway.events import Event
from rules.engine import Engine
from rules.model import (
    AbsenceCondition,
    DurationCondition,
    Rule,
    SequenceCondition,
    ThresholdCondition,
)
from rules.ruleset import RuleSet
from rules.signal import Signal


def condition_span_s(rule: Rule) -> float:
    """How far back one evaluation of the rule's condition looks (0 for ``match``)."""
    cond = rule.condition
    if isinstance(cond, ThresholdCondition):
        return float(cond.window)
    if isinstance(cond, SequenceCondition):
        return float(cond.within)
    if isinstance(cond, AbsenceCondition | DurationCondition):
        return float(cond.for_)
    return 0.0


def rule_horizon_s(rule: Rule) -> float:
    """The condition's span plus how long a signal it fires holds its group (the cooldown;
    a panic: its cancel grace), so replaying that much re-opens the signal as it was."""
    hold = (
        (rule.cancel.within if rule.cancel else 0.0) if rule.is_panic else rule.effective_cooldown
    )
    return condition_span_s(rule) + hold


def by_last_event(rule: Rule) -> bool:
    """An absence rule grouped by the device or what the registry says of it (not by an
    event attribute): its state is each group's last event, so a device's last event
    rebuilds it, however long ago (``absence_horizon_s``)."""
    cond = rule.condition
    return isinstance(cond, AbsenceCondition) and not any(
        g.startswith("attributes.") for g in cond.group_by
    )


def type_horizons_s(ruleset: RuleSet, late_tolerance_s: float) -> dict[tuple[str, str], float]:
    """(device kind, event type) → how far back such events are replayed: the longest horizon
    of the rules triggered by them (``by_last_event`` rules aside), plus the late tolerance.
    A match rule with a day's cooldown on panic buttons' battery reports does not make a
    door's events of the day worth replaying."""
    out: dict[tuple[str, str], float] = {}
    for cr in ruleset.rules:
        if not cr.rule.enabled or by_last_event(cr.rule):
            continue
        horizon = rule_horizon_s(cr.rule) + late_tolerance_s
        for sel in (*cr.selectors, *((cr.cancel,) if cr.cancel else ())):
            for kind, event_type in sel.keys:
                key = (kind.value, event_type.value)
                out[key] = max(out.get(key, 0.0), horizon)
    return out


def last_event_types(ruleset: RuleSet) -> frozenset[tuple[str, str]]:
    """The (device kind, event type) pairs the ``by_last_event`` rules are triggered by."""
    return frozenset(
        (kind.value, event_type.value)
        for cr in ruleset.rules
        if cr.rule.enabled and by_last_event(cr.rule)
        for sel in cr.selectors
        for kind, event_type in sel.keys
    )


def absence_horizon_s(ruleset: RuleSet, late_tolerance_s: float) -> float:
    """How far back a device's last event still matters to the ``by_last_event`` rules
    (0 when there are none): their ``for`` and cooldown, plus the late tolerance."""
    spans = [
        rule_horizon_s(cr.rule)
        for cr in ruleset.rules
        if cr.rule.enabled and by_last_event(cr.rule)
    ]
    return max(spans) + late_tolerance_s if spans else 0.0


@dataclass
class Replayed:
    """What a replay did: events evaluated (not skipped as already seen), and the signals
    it produced, in order, for the caller to sift (module doc)."""

    events: int = 0
    skipped: int = 0  # already evaluated by this engine
    signals: list[Signal] = field(default_factory=list)

    def add(self, other: Replayed) -> None:
        self.events += other.events
        self.skipped += other.skipped
        self.signals += other.signals

    def new_signals(self) -> list[Signal]:
        return [s for s in self.signals if s.kind == "new"]


def replay_site(engine: Engine, events: Iterable[Event]) -> Replayed:
    """Evaluate stored ``events`` (one site's, in arrival order) to rebuild their state.

    Timers are advanced to each event's receipt first, as the live gateway did, so a duration
    or absence that fired between two events fires between them here too. Advancing to a past
    time fires nothing of the other sites: their timers due by then fired live already."""
    out = Replayed()
    clock: datetime | None = None
    for event in events:
        if clock is None or event.received_at > clock:
            clock = event.received_at
            out.signals += engine.advance(clock)
        before = engine.counters.duplicates
        out.signals += engine.process(event, rebuild=True)
        if engine.counters.duplicates != before:
            out.skipped += 1
        else:
            out.events += 1
    return out
