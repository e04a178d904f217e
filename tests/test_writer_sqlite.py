"""The batch writer on SQLite: WAL checkpoints happen in the writer thread, never inside a
commit (an alarm's commit must not pay for the fsync of a checkpoint)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.storage import tables, writer
from gateway.storage.db import make_engine, migrate
from gateway.storage.writer import BatchWriter, WriteItem
from tests.test_api import make_event


def _write(path: Path, n: int) -> int:
    """Write n events through a writer; returns the size of the main database file."""
    engine = make_engine(f"sqlite:///{path}")
    migrate(engine)
    w = BatchWriter(engine, batch_size=200, interval_s=0.001)
    w.start()
    for i in range(n):
        w.submit(WriteItem([make_event(i)]))
    assert w.flush(30)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.events)).scalar_one() == n
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 0
        size = path.stat().st_size  # before the writer stops (its last connection checkpoints)
    w.stop()
    engine.dispose()
    return size


def test_the_writer_checkpoints_the_wal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer, "CHECKPOINT_EVERY_S", 0.0)
    checkpointed = _write(tmp_path / "a.db", 3000)
    monkeypatch.setattr(BatchWriter, "_checkpoint", lambda self: None)
    never = _write(tmp_path / "b.db", 3000)
    # without the writer's checkpoints the rows stay in the WAL: commits do not checkpoint
    assert checkpointed > never * 2, (checkpointed, never)
