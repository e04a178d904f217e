"""``duration``: a state started by ``start`` and not ended by ``end`` within ``for``.

The deadline is on event time and fires when the injected clock passes it. An ``end`` seen
before its ``start`` (out of order) is remembered, so the late ``start`` does not open a
state that already ended. When a fired state ends, a ``resolve`` hit is returned.
"""

from __future__ import annotations

import heapq
from typing import Any

from rules.conditions.base import ConditionState, Hit, Ref, Where, dur, iso
from rules.context import Ctx

START, END = 0, 1


class _Open:
    __slots__ = ("fired", "held", "ref", "start", "where")

    def __init__(self, start: float, ref: Ref, where: Where) -> None:
        self.start = start
        self.held = 0.0  # not before this clock time (hold)
        self.ref = ref
        self.where = where
        self.fired = False


class DurationState(ConditionState):
    timer = True

    def __init__(self, for_s: float, start_text: str, end_text: str, max_groups: int) -> None:
        self.for_s = for_s
        self.why = f"duration: ({start_text}) without ({end_text}) for {dur(for_s)}"
        self.max_groups = max_groups
        self.groups: dict[str, _Open] = {}
        self.ended: dict[str, float] = {}  # last end time per group (for out-of-order ends)
        self.heap: list[tuple[float, float, str]] = []
        self.dropped = 0

    def on_event(self, role: int, c: Ctx, key: str, low: float) -> Hit | None:
        t = c.t
        if role == END:
            if t > self.ended.get(key, float("-inf")):
                self.ended[key] = t
            o = self.groups.get(key)
            if o is None or t < o.start:
                return None
            del self.groups[key]
            if o.fired:
                why = f"duration: {key} ended by {c.event.type.value} (event {c.event.event_id})"
                return Hit(key, t, [Ref.of(c)], why, Where.of(c), c, resolve=True)
            return None
        if self.ended.get(key, float("-inf")) >= t:
            return None  # already ended (its end arrived first)
        o = self.groups.get(key)
        if o is None:
            if len(self.groups) >= self.max_groups:
                self.dropped += 1
                return None
            self.groups[key] = _Open(t, Ref.of(c), Where.of(c))
            heapq.heappush(self.heap, (t + self.for_s, t, key))
        elif t < o.start and not o.fired:
            o.start, o.ref = t, Ref.of(c)
            heapq.heappush(self.heap, (t + self.for_s, t, key))
        return None

    def advance(self, now: float) -> list[Hit]:
        hits: list[Hit] = []
        heap = self.heap
        while heap and heap[0][0] <= now:
            deadline, start, key = heapq.heappop(heap)
            o = self.groups.get(key)
            if o is None or o.fired or o.start != start or deadline < o.held:
                continue  # gone, fired, restarted, or held later (another entry then)
            o.fired = True
            why = f"{self.why} for {key}: started {iso(start)} (event {o.ref.event_id})"
            hits.append(Hit(key, start + self.for_s, [o.ref], why, o.where))
        return hits

    def prune(self, low: float) -> None:
        for key in [k for k, t in self.ended.items() if t < low]:
            del self.ended[key]

    def size(self) -> int:
        return len(self.groups)

    def hold(self, site: str, until: float) -> int:
        held = 0
        for key, o in self.groups.items():
            if o.where.site == site and not o.fired and o.start + self.for_s < until:
                if o.held < until:
                    o.held = until
                    heapq.heappush(self.heap, (until, o.start, key))
                held += 1
        return held

    def forget_device(self, device_id: str) -> int:
        gone = [k for k, o in self.groups.items() if o.ref.device_id == device_id]
        for key in gone:  # their heap entries are skipped when they come due
            del self.groups[key]
        return len(gone)

    def snapshot(self) -> dict[str, Any]:
        return {
            "groups": {
                k: [o.start, o.fired, o.ref.dump(), o.where.dump()] for k, o in self.groups.items()
            },
            "ended": dict(self.ended),
        }

    def restore(self, data: dict[str, Any], now: float, grace: float) -> None:
        for key, (start, fired, ref, where) in data.get("groups", {}).items():
            o = self.groups[key] = _Open(float(start), Ref.load(ref), Where.load(where))
            o.fired = bool(fired)
            if not o.fired:
                heapq.heappush(self.heap, (o.start + self.for_s, o.start, key))
        self.ended.update({k: float(v) for k, v in data.get("ended", {}).items()})
