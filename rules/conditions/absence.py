"""``absence``: no matching event heard for ``for`` per group (heartbeat lost, silent camera).

Absence is measured on gateway receive time, so a device whose clock is wrong is not reported
offline while it is talking. A group is tracked from its first matching event. The timer heap
holds at most one entry per group (re-armed lazily), so 10,000 devices sending heartbeats do
not grow it. When the group is heard again after firing, a ``resolve`` hit is returned.
"""

from __future__ import annotations

import heapq
from typing import Any

from rules.conditions.base import ConditionState, Hit, Ref, Where, dur, iso
from rules.context import Ctx


class _Seen:
    """Last message heard from a group. The event's brief is kept as the event itself only
    until a signal needs it; plain fields are cheaper than objects per heartbeat."""

    __slots__ = ("fired", "held", "last", "queued", "ref", "where")

    def __init__(self, last: float, ref: Ref | Ctx, where: Where | None) -> None:
        self.last = last
        self.held = 0.0  # not before this clock time (hold)
        self.ref = ref  # a Ctx until frozen into a Ref (on fire or snapshot)
        self.where = where
        self.fired = False
        self.queued = False

    def freeze(self) -> tuple[Ref, Where]:
        if isinstance(self.ref, Ctx):
            self.where = Where.of(self.ref)
            self.ref = Ref.of(self.ref)
        assert self.where is not None
        return self.ref, self.where


class AbsenceState(ConditionState):
    timer = True

    def __init__(self, for_s: float, text: str, max_groups: int) -> None:
        self.for_s = for_s
        self.text = text
        self.max_groups = max_groups
        self.groups: dict[str, _Seen] = {}
        self.heap: list[tuple[float, str]] = []
        self.dropped = 0

    def _arm(self, key: str, s: _Seen, deadline: float) -> None:
        heapq.heappush(self.heap, (deadline, key))
        s.queued = True

    def on_event(self, role: int, c: Ctx, key: str, low: float) -> Hit | None:
        s = self.groups.get(key)
        if s is None:
            if len(self.groups) >= self.max_groups:
                self.dropped += 1
                return None
            s = self.groups[key] = _Seen(c.rt, c, None)
            self._arm(key, s, c.rt + self.for_s)
            return None
        if c.rt >= s.last:
            s.last = c.rt
            s.ref = c
        if not s.queued:
            self._arm(key, s, s.last + self.for_s)
        if s.fired:
            s.fired = False
            why = f"absence: {key} heard again ({c.event.type.value}, event {c.event.event_id})"
            return Hit(key, c.t, [Ref.of(c)], why, Where.of(c), c, resolve=True)
        return None

    def advance(self, now: float) -> list[Hit]:
        hits: list[Hit] = []
        heap = self.heap
        while heap and heap[0][0] <= now:
            _, key = heapq.heappop(heap)
            s = self.groups.get(key)
            if s is None:
                continue
            s.queued = False
            deadline = s.last + self.for_s
            if max(deadline, s.held) > now:
                self._arm(key, s, max(deadline, s.held))
            elif not s.fired:
                s.fired = True
                ref, where = s.freeze()
                why = (
                    f"absence: no event ({self.text}) for {dur(self.for_s)} from {key}; "
                    f"last heard {iso(s.last)} (event {ref.event_id})"
                )
                hits.append(Hit(key, deadline, [ref], why, where))
        return hits

    def size(self) -> int:
        return len(self.groups)

    def hold(self, site: str, until: float) -> int:
        held = 0
        for key, s in self.groups.items():
            where = s.ref.event.site if isinstance(s.ref, Ctx) else (s.where and s.where.site)
            if where == site and not s.fired and s.last + self.for_s < until:
                s.held = until
                if not s.queued:
                    self._arm(key, s, until)
                held += 1
        return held

    def forget_device(self, device_id: str) -> int:
        gone = [
            k
            for k, s in self.groups.items()
            if (s.ref.event.device_id if isinstance(s.ref, Ctx) else s.ref.device_id) == device_id
        ]
        for key in gone:  # their heap entries are skipped when they come due
            del self.groups[key]
        return len(gone)

    def snapshot(self) -> dict[str, Any]:
        out = {}
        for k, s in self.groups.items():
            ref, where = s.freeze()
            out[k] = [s.last, s.fired, ref.dump(), where.dump()]
        return {"groups": out}

    def restore(self, data: dict[str, Any], now: float, grace: float) -> None:
        """Deadlines survive the restart; ones that passed while the gateway was down fire
        ``grace`` seconds after ``now`` (time for queued broker messages to arrive)."""
        for key, (last, fired, ref, where) in data.get("groups", {}).items():
            s = self.groups[key] = _Seen(float(last), Ref.load(ref), Where.load(where))
            s.fired = bool(fired)
            if not s.fired:
                self._arm(key, s, max(s.last + self.for_s, now + grace))
