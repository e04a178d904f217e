"""A bounded set of recently seen event ids: duplicates (broker redeliveries) never count twice."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable


class SeenIds:
    """Remembers the last ``capacity`` ids (oldest forgotten first); O(1) per check."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._set: set[str] = set()
        self._order: deque[str] = deque()

    def add(self, event_id: str) -> bool:
        """Record ``event_id``; False when it was already seen."""
        if event_id in self._set:
            return False
        self._set.add(event_id)
        self._order.append(event_id)
        if len(self._order) > self.capacity:
            self._set.discard(self._order.popleft())
        return True

    def __len__(self) -> int:
        return len(self._order)

    def recent(self, n: int) -> list[str]:
        return list(self._order)[-n:] if n else []

    def extend(self, ids: Iterable[str]) -> None:
        for i in ids:
            self.add(i)
