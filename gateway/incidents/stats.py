"""Figures for the dashboards, computed from the timeline (never kept by hand).

Per incident, from its timeline entries (see ``docs/incidents.md`` for the definitions):

- stage: the ``to_stage`` of the last entry that has one;
- handled: some entry moved it to ``handling``;
- closed: its stage is verified, evaluated or false_alarm (cancelled ones are left out of
  every rate); time to close: opened → the last move to verified or false_alarm;
- time to acknowledge: opened → the first ``acknowledge`` entry;
- closed inside the cell: closed with no ``escalate`` entry;
- grid workers: the assignees of ``dispatch`` entries; reports filed: ``open`` entries of
  manual and hazard incidents by that person.

Percentiles are nearest-rank (p50 is the median). The monthly score is documented in
``score`` below and in the docs.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from gateway.csv_export import csv_text
from gateway.incidents.lifecycle import Action, Stage

RESULT_STAGES = frozenset({Stage.VERIFIED, Stage.EVALUATED, Stage.FALSE_ALARM})
SPEED_HORIZON_H = 72.0  # closing later than this earns no speed points
NEUTRAL_QUALITY = 0.6  # quality share when nothing was evaluated (a score of 3 of 5)
REPORTS_FOR_FULL_BONUS = 20


@dataclass(frozen=True, slots=True)
class IncidentRow:
    id: int
    category: str
    source: str
    community: str | None
    cell: str | None
    opened_at: datetime


@dataclass(frozen=True, slots=True)
class Entry:
    incident_id: int
    at: datetime
    actor: str
    action: str
    to_stage: str | None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Facts:
    incident: IncidentRow
    stage: Stage = Stage.DISCOVERED
    handled: bool = False
    escalated: bool = False
    ack_s: float | None = None
    close_s: float | None = None
    score: int | None = None
    assignees: set[str] = field(default_factory=set)
    reporter: str | None = None

    @property
    def counted(self) -> bool:
        return self.stage is not Stage.CANCELLED

    @property
    def closed(self) -> bool:
        return self.stage in RESULT_STAGES


def facts(incidents: Iterable[IncidentRow], entries: Iterable[Entry]) -> list[Facts]:
    by_id = {i.id: Facts(i) for i in incidents}
    for e in sorted(entries, key=lambda e: (e.at, e.incident_id)):
        f = by_id.get(e.incident_id)
        if f is None:
            continue
        since = (e.at - f.incident.opened_at).total_seconds()
        if e.to_stage:
            f.stage = Stage(e.to_stage)
            if f.stage is Stage.HANDLING:
                f.handled = True
            if f.stage in (Stage.VERIFIED, Stage.FALSE_ALARM):
                f.close_s = since
            if f.stage is Stage.DISCOVERED and e.action == Action.REOPEN.value:
                f.close_s, f.score = None, None
        if e.action == Action.ACKNOWLEDGE.value and f.ack_s is None:
            f.ack_s = since
        elif e.action == Action.ESCALATE.value:
            f.escalated = True
        elif e.action == Action.DISPATCH.value:
            f.assignees.update(e.data.get("assignees", []))
        elif e.action == Action.EVALUATE.value:
            f.score = e.data.get("score")
        elif e.action == Action.OPEN.value and f.incident.source in ("manual", "hazard"):
            f.reporter = e.actor
    return list(by_id.values())


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..1); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p * len(ordered)))
    return ordered[rank - 1]


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


@dataclass
class Summary:
    total: int
    by_category: dict[str, int]
    by_stage: dict[str, int]
    handling_rate: float | None
    closing_rate: float | None
    closed_in_cell_share: float | None
    ack_p50_s: float | None
    ack_p90_s: float | None
    close_p50_s: float | None
    close_p90_s: float | None


def summarise(items: Sequence[Facts]) -> Summary:
    counted = [f for f in items if f.counted]
    closed = [f for f in counted if f.closed]
    acks = [f.ack_s for f in items if f.ack_s is not None]
    closes = [f.close_s for f in closed if f.close_s is not None]
    return Summary(
        total=len(items),
        by_category=dict(Counter(f.incident.category for f in items)),
        by_stage={s.value: n for s, n in Counter(f.stage for f in items).items()},
        handling_rate=_ratio(sum(f.handled or f.closed for f in counted), len(counted)),
        closing_rate=_ratio(len(closed), len(counted)),
        closed_in_cell_share=_ratio(sum(not f.escalated for f in closed), len(closed)),
        ack_p50_s=percentile(acks, 0.5),
        ack_p90_s=percentile(acks, 0.9),
        close_p50_s=percentile(closes, 0.5),
        close_p90_s=percentile(closes, 0.9),
    )


@dataclass
class RankRow:
    rank: int
    key: str
    incidents: int
    closed: int
    reports: int
    handling_rate: float | None
    closing_rate: float | None
    closed_in_cell_share: float | None
    speed: float | None
    quality: float | None
    score: float


def score(
    handling_rate: float | None,
    closing_rate: float | None,
    in_cell: float | None,
    speed: float | None,
    quality: float | None,
    reports: int | None = None,
) -> float:
    """Monthly score, 0–100::

        base = 30·closing_rate + 20·handling_rate + 20·closed_in_cell_share
               + 15·speed + 15·quality
        speed   = mean over closed incidents of max(0, 1 − hours_to_close / 72)
        quality = mean evaluation score / 5 (0.6 when nothing was evaluated)

    A missing rate (nothing to count) counts as 0. For a grid worker (``reports`` given):
    ``0.9·base + 10·min(1, reports / 20)``, rewarding reports filed.
    """
    base = (
        30 * (closing_rate or 0)
        + 20 * (handling_rate or 0)
        + 20 * (in_cell or 0)
        + 15 * (speed or 0)
        + 15 * (quality if quality is not None else NEUTRAL_QUALITY)
    )
    if reports is not None:
        base = 0.9 * base + 10 * min(1.0, reports / REPORTS_FOR_FULL_BONUS)
    return round(base, 2)


def rank(items: Sequence[Facts], by: str) -> list[RankRow]:
    """Ranking per ``community`` or per ``grid_worker``, best first (ties by key)."""
    groups: dict[str, list[Facts]] = defaultdict(list)
    reports: Counter[str] = Counter()
    for f in items:
        if by == "community":
            if f.incident.community:
                groups[f.incident.community].append(f)
        else:
            for person in f.assignees:
                groups[person].append(f)
            if f.reporter:
                reports[f.reporter] += 1
    if by != "community":
        for person in reports:
            groups.setdefault(person, [])
    rows = []
    for key, fs in groups.items():
        s = summarise(fs)
        closed = [f for f in fs if f.counted and f.closed]
        speeds = [
            max(0.0, 1 - f.close_s / 3600 / SPEED_HORIZON_H)
            for f in closed
            if f.close_s is not None
        ]
        scores = [f.score for f in fs if f.score is not None]
        speed = round(sum(speeds) / len(speeds), 4) if speeds else None
        quality = round(sum(scores) / len(scores) / 5, 4) if scores else None
        n_reports = reports[key] if by != "community" else None
        rows.append(
            RankRow(
                0,
                key,
                len(fs),
                len(closed),
                reports[key],
                s.handling_rate,
                s.closing_rate,
                s.closed_in_cell_share,
                speed,
                quality,
                score(
                    s.handling_rate,
                    s.closing_rate,
                    s.closed_in_cell_share,
                    speed,
                    quality,
                    n_reports,
                ),
            )
        )
    rows.sort(key=lambda r: (-r.score, r.key))
    for i, r in enumerate(rows, start=1):
        r.rank = i
    return rows


RANK_COLUMNS = (
    "rank",
    "key",
    "score",
    "incidents",
    "closed",
    "reports",
    "handling_rate",
    "closing_rate",
    "closed_in_cell_share",
    "speed",
    "quality",
)


def ranking_csv(rows: Sequence[RankRow]) -> str:
    """The ranking as CSV, every cell escaped for spreadsheets (``gateway.csv_export``)."""
    return csv_text(RANK_COLUMNS, ([getattr(r, c) for c in RANK_COLUMNS] for r in rows))
