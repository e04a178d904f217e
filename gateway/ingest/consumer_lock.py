"""One consumer per client id on a machine: a lock file in the data directory, so several
web workers (or a second ``lianfang run``) never start competing consumers of one queue.
(Re-exported by ``gateway.ingest.mqtt``, where it used to live.)"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class ConsumerLockError(RuntimeError):
    """Another process holds the consumer lock file (``path``: its pid is written there)."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


def consumer_lock_path(data_dir: Path, client_id: str) -> Path:
    """The lock file that keeps a second consumer of one client id (one queue) out."""
    return data_dir / f"mqtt-consumer-{client_id}.lock"


class SingleConsumerLock:
    """An exclusive, non-blocking lock file; released when the process exits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(fd)
            raise ConsumerLockError(
                f"another Lianfang consumer holds {self.path}; run one consumer per client id",
                self.path,
            ) from exc
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
