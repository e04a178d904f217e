"""Per-rule runtime state: the condition state machine, open signals and statistics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rules.conditions import ConditionState, Where, make_state
from rules.model import Severity
from rules.ruleset import CompiledRule


@dataclass(slots=True)
class OpenSignal:
    """A signal that later hits in its group attach to (cooldown) or that may be resolved,
    cancelled or act as an inhibition source."""

    signal_id: str
    started: float  # event time it opened at
    until: float  # attach later hits until then (cooldown); panic: cancel grace end
    severity: Severity
    count: int
    where: Where
    labels: dict[str, str]
    active: bool = True  # firing: not resolved or cancelled
    timer: bool = False  # absence/duration: active until resolved, not until `until`

    def dump(self) -> list[Any]:
        return [
            self.signal_id,
            self.started,
            self.until,
            self.severity.value,
            self.count,
            self.where.dump(),
            self.labels,
            self.active,
            self.timer,
        ]

    @classmethod
    def load(cls, d: list[Any]) -> OpenSignal:
        return cls(
            str(d[0]),
            float(d[1]),
            float(d[2]),
            Severity(d[3]),
            int(d[4]),
            Where.load(d[5]),
            dict(d[6]),
            bool(d[7]),
            bool(d[8]),
        )

    def is_active(self, at: float) -> bool:
        return self.active and (self.timer or at < self.until)


@dataclass(slots=True)
class RuleStats:
    fired: int = 0  # new signals
    updates: int = 0
    inhibited: int = 0
    out_of_schedule: int = 0
    expr_errors: int = 0
    last_fired_at: float | None = None
    last_signal_id: str | None = None

    def dump(self) -> dict[str, Any]:
        return {s: getattr(self, s) for s in self.__slots__}

    @classmethod
    def load(cls, d: dict[str, Any]) -> RuleStats:
        return cls(**{k: v for k, v in d.items() if k in cls.__slots__})


@dataclass(slots=True)
class RuleRuntime:
    compiled: CompiledRule
    cond: ConditionState
    enabled: bool
    open: dict[str, OpenSignal] = field(default_factory=dict)
    stats: RuleStats = field(default_factory=RuleStats)

    @classmethod
    def fresh(cls, compiled: CompiledRule, max_groups: int) -> RuleRuntime:
        return cls(compiled, make_state(compiled, max_groups), compiled.rule.enabled)

    def prune_open(self, at: float) -> None:
        for key in [k for k, o in self.open.items() if not o.is_active(at) and at >= o.until]:
            del self.open[key]
