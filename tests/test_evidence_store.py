"""EvidenceStore under concurrency: saves racing prune (which removes empty day folders)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.evidence.snapshot import JPEG_MAGIC, Snapshot
from gateway.evidence.store import EvidenceStore

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
IMAGE = JPEG_MAGIC + b"\0" * 200
ROUNDS = 1000


def test_saves_racing_prune_lose_nothing(tmp_path: Path) -> None:
    # A cap of one snapshot: each save evicts the one before, so its day folder is empty at
    # once and prune removes it while the next save (into the same few days) may be between
    # its mkdir and its write: the race that lost a snapshot and made CI flaky.
    store = EvidenceStore(tmp_path, max_bytes=len(IMAGE), retention_days=10_000)
    store.load()
    errors: list[BaseException] = []
    done = threading.Event()

    def prune() -> None:
        try:
            while not done.is_set():
                store.prune()
                time.sleep(0)  # let a saver run: the race needs them interleaved
        except BaseException as exc:
            errors.append(exc)

    def save(offset: int) -> None:
        try:
            for i in range(ROUNDS):
                captured = T0 + timedelta(days=(i + offset) % 3, microseconds=i)
                stored = store.save(Snapshot(f"cam-{offset}", captured, IMAGE, "http"))
                assert stored.size == len(IMAGE)
        except BaseException as exc:
            errors.append(exc)

    pruners = [threading.Thread(target=prune)]
    savers = [threading.Thread(target=save, args=(n,)) for n in range(2)]
    for t in pruners + savers:
        t.start()
    for t in savers:
        t.join()
    done.set()
    for t in pruners:
        t.join()

    assert errors == []
    assert store.evicted == 2 * ROUNDS - len(store)
    # What the index holds is on disk, and no temporary file is left behind.
    for path in tmp_path.rglob("*.jpg"):
        assert store.get(path.stem) is not None
    assert len(store) >= 1 and all(store.read(m.id) == IMAGE for m in store._index.values())
    assert not list(tmp_path.rglob(".*.tmp"))
