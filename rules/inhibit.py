"""Inhibition: maintenance windows and ``inhibit`` rules (Alertmanager style). Never applied to
panic rules: a panic alarm is never inhibited away."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from rules.conditions import Where
from rules.model import InhibitRule, Rule
from rules.runtime import OpenSignal, RuleRuntime


def signal_field(
    name: str, rule_id: str, category: str, group: str, where: Where, labels: Mapping[str, str]
) -> str | None:
    if name == "site":
        return where.site
    if name == "zone":
        return where.zone
    if name == "device_id":
        return where.device_id
    if name == "rule_id":
        return rule_id
    if name == "category":
        return category
    if name == "group_key":
        return group
    return labels.get(name)


def _pairs(equal: Iterable[str]) -> list[tuple[str, str]]:
    out = []
    for item in equal:
        src, _, dst = item.partition("=")
        out.append((src.strip(), (dst or src).strip()))
    return out


class Inhibitor:
    def __init__(self, inhibit: Iterable[InhibitRule]) -> None:
        self.rules = [(r, _pairs(r.equal)) for r in inhibit]

    def inhibited(
        self,
        rule: Rule,
        group: str,
        where: Where,
        labels: Mapping[str, str],
        at: float,
        runtimes: Mapping[str, RuleRuntime],
    ) -> str | None:
        """The signal id that inhibits this new signal, if any."""
        for inh, pairs in self.rules:
            tgt = inh.target
            if tgt.rules and rule.id not in tgt.rules:
                continue
            if any(labels.get(k) != v for k, v in tgt.labels.items()):
                continue
            sources = [runtimes[r] for r in inh.source.rules if r in runtimes] or list(
                runtimes.values()
            )
            mine = {
                d: signal_field(d, rule.id, rule.category.value, group, where, labels)
                for _, d in pairs
            }
            for src in sources:
                src_rule = src.compiled.rule
                for key, o in src.open.items():
                    if src_rule.id == rule.id and key == group:
                        continue
                    if self._matches(inh, pairs, src_rule, key, o, mine, at):
                        return o.signal_id
        return None

    @staticmethod
    def _matches(
        inh: InhibitRule,
        pairs: list[tuple[str, str]],
        src_rule: Rule,
        key: str,
        o: OpenSignal,
        mine: Mapping[str, str | None],
        at: float,
    ) -> bool:
        if not o.is_active(at):
            return False
        if any(o.labels.get(k) != v for k, v in inh.source.labels.items()):
            return False
        for s, d in pairs:
            theirs = signal_field(s, src_rule.id, src_rule.category.value, key, o.where, o.labels)
            if theirs is None or theirs != mine[d]:
                return False
        return True
