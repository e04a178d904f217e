"""Evidence on disk: JPEG snapshots under ``data_dir/evidence`` with a size cap and retention.

Layout: ``<root>/<YYYY-MM-DD>/<id>.jpg`` with a ``<id>.json`` sidecar (camera, capture time,
reason, the incident or event it belongs to, pinned). Files are written to a temporary name
and renamed, so a crash never leaves half a JPEG under a real name.

Limits: when the total passes ``max_bytes`` the oldest *unpinned* snapshots go first; after
``retention_days`` unpinned snapshots are deleted by ``prune``. Pinned snapshots (evidence of an
open incident) are kept until unpinned. Thread-safe: the service calls it from worker threads.

Day folders are created by ``save`` and removed by ``prune`` once empty. A save in progress
registers its folder first (under the lock), and ``prune`` and ``load`` leave a registered
folder and its temporary files alone, so a folder can never vanish between a save's ``mkdir``
and its write.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.events import utcnow
from gateway.evidence.snapshot import Snapshot, check_jpeg
from gateway.storage.files import private_dir, write_private

log = logging.getLogger(__name__)

ID_PATTERN = r"^[0-9]{8}T[0-9]{12}Z-[A-Za-z0-9_.-]{1,64}-[0-9a-f]{8}$"
_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class StoredSnapshot:
    """What the store knows about one saved snapshot (the JPEG stays on disk)."""

    id: str
    camera_id: str
    captured_at: datetime
    size: int
    method: str
    reason: str = ""
    ref: str | None = None  # incident or event id it is evidence for
    pinned: bool = False

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["captured_at"] = self.captured_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> StoredSnapshot:
        return cls(
            id=str(data["id"]),
            camera_id=str(data["camera_id"]),
            captured_at=datetime.fromisoformat(str(data["captured_at"])),
            size=int(str(data["size"])),
            method=str(data.get("method", "")),
            reason=str(data.get("reason", "")),
            ref=None if data.get("ref") is None else str(data["ref"]),
            pinned=bool(data.get("pinned", False)),
        )


class EvidenceStore:
    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int = 2 * 1024**3,
        retention_days: float = 30,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.retention = timedelta(days=retention_days)
        self._clock = clock
        self._lock = threading.Lock()
        self._index: dict[str, StoredSnapshot] = {}
        self._total = 0
        self.evicted = 0
        self._loaded = False
        self._writing: Counter[str] = Counter()  # day folder → saves writing into it now

    # -- lifecycle ------------------------------------------------------------------------

    def load(self) -> None:
        """Index what is already on disk (blocking; call once, from a worker thread)."""
        with self._lock:
            self._load_locked()

    def _load_locked(self) -> None:
        self._index.clear()
        self._total = 0
        private_dir(self.root)
        for sidecar in sorted(self.root.glob("*/*.json")):
            try:
                meta = StoredSnapshot.from_json(json.loads(sidecar.read_text("utf-8")))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("evidence: skipping unreadable %s: %s", sidecar, exc)
                continue
            if not self._jpeg_path(meta).is_file():
                sidecar.unlink(missing_ok=True)
                continue
            self._index[meta.id] = meta
            self._total += meta.size
        for tmp in self.root.glob("*/.*.tmp"):  # a crash mid-write (not a save running now)
            if tmp.parent.name not in self._writing:
                tmp.unlink(missing_ok=True)
        self._loaded = True

    # -- reading --------------------------------------------------------------------------

    @property
    def total_bytes(self) -> int:
        return self._total

    def __len__(self) -> int:
        return len(self._index)

    def get(self, snapshot_id: str) -> StoredSnapshot | None:
        return self._index.get(snapshot_id)

    def read(self, snapshot_id: str) -> bytes | None:
        meta = self._index.get(snapshot_id)
        if meta is None:
            return None
        try:
            return self._jpeg_path(meta).read_bytes()
        except OSError:
            return None

    def for_ref(self, ref: str) -> list[StoredSnapshot]:
        return sorted(
            (m for m in self._index.values() if m.ref == ref), key=lambda m: m.captured_at
        )

    # -- writing --------------------------------------------------------------------------

    def save(
        self, snapshot: Snapshot, *, ref: str | None = None, pin: bool = False
    ) -> StoredSnapshot:
        """Write the JPEG and its sidecar, then evict the oldest unpinned past the cap."""
        check_jpeg(snapshot.jpeg, max(self.max_bytes, 1))
        captured = snapshot.captured_at.astimezone(UTC)
        slug = _SLUG.sub("_", snapshot.camera_id)[:64] or "camera"
        snapshot_id = f"{captured:%Y%m%dT%H%M%S%f}Z-{slug}-{secrets.token_hex(4)}"
        meta = StoredSnapshot(
            id=snapshot_id,
            camera_id=snapshot.camera_id,
            captured_at=captured,
            size=len(snapshot.jpeg),
            method=snapshot.method,
            reason=snapshot.reason[:200],
            ref=ref,
            pinned=pin,
        )
        jpeg_path = self._jpeg_path(meta)
        with self._writing_into(jpeg_path.parent):
            _write_atomic(jpeg_path, snapshot.jpeg)
            _write_atomic(jpeg_path.with_suffix(".json"), json.dumps(meta.to_json()).encode())
            with self._lock:
                before = self._index.get(meta.id)  # a load() meanwhile may have found it
                self._index[meta.id] = meta
                self._total += meta.size - (before.size if before is not None else 0)
                self._evict_over_cap()
        return meta

    @contextlib.contextmanager
    def _writing_into(self, day: Path) -> Iterator[None]:
        """Register a save in ``day`` (created here) so that ``prune`` leaves it alone."""
        with self._lock:
            if not self._loaded:
                self._load_locked()
            self._writing[day.name] += 1
            try:
                private_dir(day)
            except BaseException:
                self._release(day.name)
                raise
        try:
            yield
        finally:
            with self._lock:
                self._release(day.name)

    def _release(self, day: str) -> None:
        self._writing[day] -= 1
        if self._writing[day] <= 0:
            del self._writing[day]

    def set_pinned(self, snapshot_id: str, pinned: bool) -> StoredSnapshot | None:
        with self._lock:
            meta = self._index.get(snapshot_id)
            if meta is None:
                return None
            meta = replace(meta, pinned=pinned)
            self._index[snapshot_id] = meta
            _write_atomic(
                self._jpeg_path(meta).with_suffix(".json"), json.dumps(meta.to_json()).encode()
            )
            if not pinned:
                self._evict_over_cap()
            return meta

    def prune(self) -> int:
        """Delete unpinned snapshots older than the retention period; returns how many."""
        cutoff = self._clock() - self.retention
        with self._lock:
            old = [m for m in self._index.values() if not m.pinned and m.captured_at < cutoff]
            for meta in old:
                self._delete(meta)
            # Under the lock: a save registers its folder before creating it (_writing_into).
            for day in self.root.glob("*/") if self.root.is_dir() else []:
                if day.name not in self._writing:
                    with contextlib.suppress(OSError):
                        day.rmdir()  # only empty day folders go
        return len(old)

    # -- internals ------------------------------------------------------------------------

    def _jpeg_path(self, meta: StoredSnapshot) -> Path:
        return self.root / f"{meta.captured_at:%Y-%m-%d}" / f"{meta.id}.jpg"

    def _evict_over_cap(self) -> None:
        if self._total <= self.max_bytes:
            return
        for meta in sorted(self._index.values(), key=lambda m: (m.captured_at, m.id)):
            if self._total <= self.max_bytes:
                return
            if meta.pinned:
                continue
            self._delete(meta)
            self.evicted += 1
        if self._total > self.max_bytes:
            log.warning(
                "evidence: %d bytes of pinned snapshots exceed the %d byte cap",
                self._total, self.max_bytes,
            )  # fmt: skip

    def _delete(self, meta: StoredSnapshot) -> None:
        path = self._jpeg_path(meta)
        path.unlink(missing_ok=True)
        path.with_suffix(".json").unlink(missing_ok=True)
        self._index.pop(meta.id, None)
        self._total -= meta.size


def _write_atomic(path: Path, data: bytes) -> None:
    write_private(path, data)  # owner-only: snapshots show people
