"""A PostgreSQL database per test module (skipped when unreachable), emptied of cluster
rows and events between tests, and helpers to run several workers in one process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, text

from gateway.storage.db import make_engine, migrate
from tests.conftest import postgres_database

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_engine() -> Iterator[Engine]:
    with postgres_database() as url:
        engine = make_engine(url)
        migrate(engine)
        try:
            yield engine
        finally:
            engine.dispose()


@pytest.fixture
def engine(pg_engine: Engine) -> Engine:
    with pg_engine.begin() as conn:
        conn.execute(text("TRUNCATE workers, site_leases, event_keys, events"))
    return pg_engine


async def wait_until(condition: Callable[[], bool], within: float = 20.0) -> None:
    """Poll ``condition`` until it holds; fail (not hang) after a generous ``within`` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
