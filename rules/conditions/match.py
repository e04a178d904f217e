"""``match``: one event satisfies the selector."""

from __future__ import annotations

from rules.conditions.base import ConditionState, Hit, Ref, Where
from rules.context import Ctx


class MatchState(ConditionState):
    def __init__(self, text: str) -> None:
        self._why = f"match: {text}"

    def on_event(self, role: int, c: Ctx, key: str, low: float) -> Hit | None:
        return Hit(key, c.t, [Ref.of(c)], f"{self._why}: event {c.event.event_id}", Where.of(c), c)
