"""Watch lists (plates, card references) from rule files, text files or a provider (database)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

WatchlistProvider = Callable[[str], Iterable[str]]
"""Watch-list id → values, e.g. read from the database; called on every (re)load."""


@dataclass(frozen=True)
class Watchlist:
    id: str
    values: frozenset[str]
    upper: bool

    def contains(self, value: object) -> bool:
        if value is None:
            return False
        text = str(value).strip()
        return (text.upper() if self.upper else text) in self.values

    @classmethod
    def build(cls, list_id: str, values: Iterable[str], *, upper: bool) -> Watchlist:
        cleaned = (v.strip() for v in values)
        return cls(list_id, frozenset(v.upper() if upper else v for v in cleaned if v), upper)


def read_values(path: Path) -> list[str]:
    """One value per line; ``#`` starts a comment; a CSV line contributes its first column."""
    values = []
    for line in path.read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].split(",", 1)[0].strip()
        if text:
            values.append(text)
    return values
