"""``threshold``: at least N matching events within a sliding window (inclusive) per group.

Each group keeps its events sorted by event time; an out-of-order event (within tolerance) is
inserted in place. Entries older than ``low - window`` can no longer share a window with an
accepted event and are pruned.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any

from rules.conditions.base import ConditionState, Hit, Ref, Where, dur
from rules.context import Ctx


class _Window:
    __slots__ = ("refs", "times")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.refs: list[Ref] = []

    def drop_before(self, t: float) -> None:
        cut = bisect_left(self.times, t)
        if cut:
            del self.times[:cut]
            del self.refs[:cut]


class ThresholdState(ConditionState):
    def __init__(self, count: int, window: float, text: str, max_groups: int) -> None:
        self.count = count
        self.window = window
        self.text = text
        self.max_groups = max_groups
        self.cap = max(4 * count, 256)  # events kept per group; more never change the outcome
        self.groups: dict[str, _Window] = {}
        self.dropped = 0

    def on_event(self, role: int, c: Ctx, key: str, low: float) -> Hit | None:
        w = self.groups.get(key)
        if w is None:
            if len(self.groups) >= self.max_groups:
                self.dropped += 1
                return None
            w = self.groups[key] = _Window()
        t = c.t
        w.drop_before(low - self.window)
        k = bisect_right(w.times, t)
        w.times.insert(k, t)
        w.refs.insert(k, Ref.of(c))
        if len(w.times) > self.cap:
            del w.times[0]
            del w.refs[0]
            k -= 1
        n, times = self.count, w.times
        for i in range(max(0, k - n + 1), min(k, len(times) - n) + 1):
            if times[i + n - 1] - times[i] <= self.window:
                refs = w.refs[i : i + n]
                why = (
                    f"threshold: {n} events ({self.text}) within {dur(self.window)} "
                    f"for {key}: " + ", ".join(r.event_id for r in refs)
                )
                return Hit(key, t, refs, why, Where.of(c), c, extra={"count": n})
        return None

    def prune(self, low: float) -> None:
        cut = low - self.window
        for key in [k for k, w in self.groups.items() if not w.times or w.times[-1] < cut]:
            del self.groups[key]
        for w in self.groups.values():
            w.drop_before(cut)

    def size(self) -> int:
        return len(self.groups)

    def snapshot(self) -> dict[str, Any]:
        return {"groups": {k: [r.dump() for r in w.refs] for k, w in self.groups.items()}}

    def restore(self, data: dict[str, Any], now: float, grace: float) -> None:
        for key, refs in data.get("groups", {}).items():
            w = self.groups[key] = _Window()
            w.refs = sorted((Ref.load(r) for r in refs), key=lambda r: r.t)
            w.times = [r.t for r in w.refs]
