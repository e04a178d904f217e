"""``sequence``: events matching step 1, then step 2 … all within ``within``, same group key.

Each group keeps recent events per step, sorted by event time. When an event arrives for step
i, the tightest chain through it is found greedily (latest earlier steps, earliest later
steps), so late events within tolerance complete chains as well.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any

from rules.conditions.base import ConditionState, Hit, Ref, Where, dur
from rules.context import Ctx

_CAP = 256  # events kept per step and group


class _Steps:
    __slots__ = ("refs", "times")

    def __init__(self, n: int) -> None:
        self.times: list[list[float]] = [[] for _ in range(n)]
        self.refs: list[list[Ref]] = [[] for _ in range(n)]

    def drop_before(self, t: float) -> None:
        for times, refs in zip(self.times, self.refs, strict=True):
            cut = bisect_left(times, t)
            if cut:
                del times[:cut]
                del refs[:cut]

    def empty(self) -> bool:
        return not any(self.times)


class SequenceState(ConditionState):
    def __init__(self, steps: int, within: float, texts: list[str], max_groups: int) -> None:
        self.n = steps
        self.within = within
        self.texts = texts
        self.max_groups = max_groups
        self.groups: dict[str, _Steps] = {}
        self.dropped = 0

    def on_event(self, role: int, c: Ctx, key: str, low: float) -> Hit | None:
        g = self.groups.get(key)
        if g is None:
            if len(self.groups) >= self.max_groups:
                self.dropped += 1
                return None
            g = self.groups[key] = _Steps(self.n)
        g.drop_before(low - self.within)
        times, refs = g.times[role], g.refs[role]
        k = bisect_right(times, c.t)
        times.insert(k, c.t)
        refs.insert(k, Ref.of(c))
        if len(times) > _CAP:
            del times[0]
            del refs[0]
            k -= 1
        chain = self._chain(g, role, k)
        if chain is None:
            return None
        steps = " then ".join(f"({t})" for t in self.texts)
        why = f"sequence: {steps} within {dur(self.within)} for {key}: " + " → ".join(
            r.event_id for r in chain
        )
        return Hit(key, max(c.t, chain[-1].t), chain, why, Where.of(c), c)

    def _chain(self, g: _Steps, role: int, k: int) -> list[Ref] | None:
        """Tightest chain through event ``k`` of step ``role``; each step a different event."""
        picked: list[Ref | None] = [None] * self.n
        picked[role] = g.refs[role][k]
        used = {g.refs[role][k].event_id}
        at = g.times[role][k]
        for j in range(role - 1, -1, -1):  # latest event of each earlier step
            i = bisect_right(g.times[j], at) - 1
            while i >= 0 and g.refs[j][i].event_id in used:
                i -= 1
            if i < 0:
                return None
            picked[j], at = g.refs[j][i], g.times[j][i]
            used.add(g.refs[j][i].event_id)
        first = at
        at = g.times[role][k]
        for j in range(role + 1, self.n):  # earliest event of each later step
            i = bisect_left(g.times[j], at)
            while i < len(g.times[j]) and g.refs[j][i].event_id in used:
                i += 1
            if i >= len(g.times[j]):
                return None
            picked[j], at = g.refs[j][i], g.times[j][i]
            used.add(g.refs[j][i].event_id)
        if at - first > self.within:
            return None
        return [r for r in picked if r is not None]

    def prune(self, low: float) -> None:
        cut = low - self.within
        for key in list(self.groups):
            g = self.groups[key]
            g.drop_before(cut)
            if g.empty():
                del self.groups[key]

    def size(self) -> int:
        return len(self.groups)

    def snapshot(self) -> dict[str, Any]:
        return {
            "groups": {
                k: [[r.dump() for r in step] for step in g.refs] for k, g in self.groups.items()
            }
        }

    def restore(self, data: dict[str, Any], now: float, grace: float) -> None:
        for key, steps in data.get("groups", {}).items():
            if len(steps) != self.n:
                continue
            g = self.groups[key] = _Steps(self.n)
            for j, step in enumerate(steps):
                g.refs[j] = sorted((Ref.load(r) for r in step), key=lambda r: r.t)
                g.times[j] = [r.t for r in g.refs[j]]
