"""Condition kinds: one state machine per kind, all driven by event time and an injected clock."""

from __future__ import annotations

from rules.conditions.absence import AbsenceState
from rules.conditions.base import ConditionState, Hit, Ref, Where
from rules.conditions.duration import DurationState
from rules.conditions.match import MatchState
from rules.conditions.sequence import SequenceState
from rules.conditions.threshold import ThresholdState
from rules.ruleset import CompiledRule


def make_state(rule: CompiledRule, max_groups: int) -> ConditionState:
    """Fresh state for a compiled rule's condition."""
    cond = rule.rule.condition
    sels = rule.selectors
    if cond.type == "match":
        return MatchState(sels[0].text)
    if cond.type == "threshold":
        return ThresholdState(cond.count, cond.window, sels[0].text, max_groups)
    if cond.type == "sequence":
        return SequenceState(len(cond.steps), cond.within, [s.text for s in sels], max_groups)
    if cond.type == "absence":
        return AbsenceState(cond.for_, sels[0].text, max_groups)
    return DurationState(cond.for_, sels[0].text, sels[1].text, max_groups)


__all__ = ["ConditionState", "Hit", "Ref", "Where", "make_state"]
