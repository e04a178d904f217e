"""Workers started together on one PostgreSQL database: the schema is migrated, the grid
imported and the registry seeded once each, without key collisions or deadlocks
(gateway/storage/startup.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select

from gateway.config.sites import load_sites
from gateway.grid import tables as grid_tables
from gateway.grid.model import load_grid
from gateway.grid.store import import_grid
from gateway.storage import tables
from gateway.storage.db import make_engine, migrate
from gateway.storage.registry import seed_registry
from tests.conftest import postgres_database
from tests.support.compound import ROOT

WORKERS = 4


def together(step: Callable[[], Any]) -> list[Any]:
    """Run ``step`` in WORKERS threads released at the same instant; return results or the
    exceptions they raised."""
    gate = threading.Barrier(WORKERS)
    results: list[Any] = [None] * WORKERS

    def run(i: int) -> None:
        gate.wait()
        try:
            results[i] = step()
        except Exception as exc:  # collected: the assertion shows them
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return results


def test_workers_starting_together_migrate_import_and_seed_once() -> None:
    registry = load_sites(ROOT / "config" / "sites")
    grid = load_grid(ROOT / "config" / "grid", registry)
    with postgres_database() as url:
        engines = [make_engine(url) for _ in range(WORKERS)]
        try:
            counter = iter(range(WORKERS))
            lock = threading.Lock()

            def engine() -> Any:
                with lock:
                    return engines[next(counter)]

            def start() -> dict[str, int] | None:
                e = engine()
                migrate(e)
                seed_registry(e, registry)
                return import_grid(e, grid, only_if_empty=True)

            results = together(start)
            errors = [r for r in results if isinstance(r, Exception)]
            assert errors == []
            assert sum(r is not None for r in results) == 1  # one worker imported the grid
            with engines[0].connect() as conn:
                areas = conn.execute(select(func.count()).select_from(grid_tables.grid_areas))
                devices = conn.execute(select(func.count()).select_from(tables.devices))
                assert areas.scalar_one() == len(grid.street_offices) + len(grid.communities) + len(
                    grid.cells
                )
                assert devices.scalar_one() == len(registry)
        finally:
            for e in engines:
                e.dispose()
