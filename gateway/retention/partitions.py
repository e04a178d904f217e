"""Retention on PostgreSQL's partitioned ``events``: whole partitions are dropped once their
last instant is older than the cutoff, instead of deleting rows (docs/datapool.md).

Per expired partition: count its rows (no lock), then one short transaction moves the rows
an incident refers to into ``events_old`` and drops the partition; afterwards the event ids
of the dropped range are forgotten in batches (``event_keys``), without holding a lock the
writer waits for, and so are the hourly counts of those hours (``event_counts``). ``events_old`` itself is small (incident evidence, devices with clocks in
the past) and purged row by row. Partitions for the coming periods are created here too.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, text

from gateway.storage import partitions

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PartitionPurge:
    events: int = 0  # rows removed (dropped partitions and events_old)
    kept: int = 0  # rows an incident refers to, moved to events_old or left there
    dropped: tuple[str, ...] = ()  # partitions dropped
    created: tuple[str, ...] = ()  # partitions created ahead
    keys_forgotten: int = 0


def purge_partitions(
    engine: Engine, *, cutoff: datetime, now: datetime, keep: Collection[str]
) -> PartitionPurge:
    """Drop the partitions wholly older than ``cutoff``; purge ``events_old`` below it."""
    with engine.begin() as conn:
        created = partitions.ensure_ahead(conn, now)
        parts = partitions.partitions(conn)
    removed = 0
    dropped: list[str] = []
    for part in [p for p in parts if p.start is not None and p.end <= cutoff]:
        with engine.connect() as conn:
            rows = int(conn.exec_driver_sql(f"SELECT count(*) FROM {part.name}").scalar_one())
        with engine.begin() as conn:
            gone = partitions.drop_partition(conn, part, keep)
        removed += rows - gone.kept  # the kept ones are counted in events_old below
        dropped.append(part.name)
    with engine.begin() as conn:
        old = next((p for p in partitions.partitions(conn) if p.start is None), None)
        bound = cutoff if old is None else min(cutoff, old.end)
        ids = sorted(set(keep))
        removed += conn.execute(
            text(
                f"DELETE FROM {partitions.OLD}"
                " WHERE occurred_at < :bound AND NOT (event_id = ANY(:keep))"
            ),
            {"bound": bound, "keep": ids},
        ).rowcount
        kept = int(
            conn.execute(
                text(
                    f"SELECT count(*) FROM {partitions.OLD}"
                    " WHERE occurred_at < :bound AND event_id = ANY(:keep)"
                ),
                {"bound": bound, "keep": ids},
            ).scalar_one()
        )
    with engine.begin() as conn:  # the cockpit's counts of the hours dropped
        conn.execute(text("DELETE FROM event_counts WHERE hour < :bound"), {"bound": bound})
    forgotten = 0
    while True:
        with engine.begin() as conn:
            n = partitions.forget_keys(conn, None, bound, keep)
        forgotten += n
        if n == 0:
            break
    return PartitionPurge(removed, kept, tuple(dropped), tuple(created), forgotten)
