"""A validated, compiled set of rules: what the engine runs and what reload swaps in."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from rules.context import Ctx
from rules.fields import compile_key
from rules.model import (
    InhibitRule,
    Maintenance,
    Rule,
    SequenceCondition,
)
from rules.predicate import CompiledSelector, compile_selector
from rules.schedule import InSchedule, compile_schedule
from rules.watchlist import Watchlist


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    file: str
    selectors: tuple[CompiledSelector, ...]  # by condition: when | steps… | start, end
    cancel: CompiledSelector | None
    key: Callable[[Ctx], str]
    in_schedule: InSchedule
    fingerprint: str  # changes when the condition changes (state is then not carried over)

    @property
    def id(self) -> str:
        return self.rule.id


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[CompiledRule, ...]
    inhibit: tuple[InhibitRule, ...] = ()
    maintenance: tuple[Maintenance, ...] = ()
    watchlists: dict[str, Watchlist] = field(default_factory=dict)
    files: tuple[str, ...] = ()

    def get(self, rule_id: str) -> CompiledRule | None:
        for r in self.rules:
            if r.id == rule_id:
                return r
        return None

    def maintenance_until(self) -> dict[str, datetime | None]:
        out: dict[str, datetime | None] = {}
        for m in self.maintenance:
            for d in m.devices:
                out[d] = m.until
        return out


def compile_rule(
    rule: Rule, file: str | Path, watchlists: dict[str, Watchlist], tz: ZoneInfo
) -> CompiledRule:
    cond = rule.condition
    if isinstance(cond, SequenceCondition):
        raw = list(cond.steps)
    elif cond.type == "duration":
        raw = [cond.start, cond.end]
    else:
        raw = [cond.when]
    selectors = tuple(compile_selector(s, watchlists) for s in raw)
    cancel = compile_selector(rule.cancel.when, watchlists) if rule.cancel else None
    fingerprint = hashlib.sha256(cond.model_dump_json().encode()).hexdigest()[:16]
    return CompiledRule(
        rule=rule,
        file=str(file),
        selectors=selectors,
        cancel=cancel,
        key=compile_key(list(cond.group_by)),
        in_schedule=compile_schedule(rule.schedule, tz),
        fingerprint=fingerprint,
    )
