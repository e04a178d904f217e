"""Checkpoints of the audit chain's head, kept outside the database.

A hash chain shows a row altered, moved or cut from the middle, but not rows cut from the
end: what is left still verifies. So after every append the head (last id and hash) is
written, signed, to a file of its own, and now and then to the log: ``verify`` compares
the chain with the last checkpoint and reports rows missing after it.

A checkpoint is one JSON object, ``{"v": 1, "id", "hash", "at", "sig"}``, where ``sig`` is
an HMAC-SHA256 over ``v|id|hash|at`` under a key derived from the audit key (so a
checkpoint cannot be forged without the key; an *older* genuine checkpoint can be put back
by someone who can write its file, which the log's copies show). The file is replaced
atomically and only ever moves forward (a lock file orders writers of several processes).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("gateway.audit.checkpoint")

LOG_PREFIX = "audit checkpoint "
_LABEL = b"lianfang audit checkpoint v1"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    id: int
    hash: str
    at: datetime
    sig: str = ""

    def message(self) -> bytes:
        return f"1|{self.id}|{self.hash}|{self.at.isoformat()}".encode()

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "id": self.id,
            "hash": self.hash,
            "at": self.at.isoformat(),
            "sig": self.sig,
        }

    @classmethod
    def from_json(cls, data: Any) -> Checkpoint:
        if not isinstance(data, dict) or data.get("v") != 1:
            raise ValueError("not a version 1 audit checkpoint")
        return cls(
            int(data["id"]),
            str(data["hash"]),
            datetime.fromisoformat(str(data["at"])),
            str(data["sig"]),
        )


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or whose signature does not verify."""


class Checkpoints:
    """Signs, writes and reads the checkpoints of one audit log."""

    def __init__(self, path: Path, key: bytes) -> None:
        self.path = path
        self._key = hmac.new(key, _LABEL, hashlib.sha256).digest()
        self._last_logged: int | None = None

    def sign(self, row_id: int, row_hash: str, at: datetime | None = None) -> Checkpoint:
        cp = Checkpoint(row_id, row_hash, (at or datetime.now(UTC)).astimezone(UTC))
        sig = hmac.new(self._key, cp.message(), hashlib.sha256).hexdigest()
        return Checkpoint(cp.id, cp.hash, cp.at, sig)

    def check(self, cp: Checkpoint) -> None:
        want = hmac.new(self._key, cp.message(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, cp.sig):
            raise CheckpointError(
                "the checkpoint's signature does not verify (altered, or made with another key)"
            )

    def read(self) -> Checkpoint | None:
        """The checkpoint in the file (signature checked); None when there is none yet."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            cp = Checkpoint.from_json(json.loads(text))
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{self.path}: unreadable checkpoint: {exc}") from None
        self.check(cp)
        return cp

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def record(
        self, row_id: int, row_hash: str, holds: Callable[[Checkpoint], bool] | None = None
    ) -> bool:
        """Write the head after a commit, unless the file already names a later row, or the
        chain no longer holds the row the file names (``holds``): then the file is kept as
        the evidence of a cut, and an error logged. Returns whether it was written."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with self._locked():
            with contextlib.suppress(CheckpointError):
                current = self.read()
                if current is not None and current.id >= row_id:
                    return False
                if current is not None and holds is not None and not holds(current):
                    log.error(
                        "audit log: row %d is not the row checkpointed at %s (rows were cut or "
                        "replaced); the checkpoint is kept: run `lianfang audit verify`",
                        current.id, current.at.isoformat(),
                    )  # fmt: skip
                    return False
            cp = self.sign(row_id, row_hash)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(cp.to_json(), fh)
            os.replace(tmp, self.path)
        return True

    def log_head(self, row_id: int, row_hash: str) -> bool:
        """Write the head to the log (for a copy off the machine) when it has moved."""
        if row_id == self._last_logged or row_id == 0:
            return False
        cp = self.sign(row_id, row_hash)
        log.info("%s%s", LOG_PREFIX, json.dumps(cp.to_json(), separators=(",", ":")))
        self._last_logged = row_id
        return True


def parse_log_line(line: str) -> Checkpoint:
    """The checkpoint in a log line written by ``log_head`` (for ``audit verify --head``)."""
    at = line.find(LOG_PREFIX)
    text = line[at + len(LOG_PREFIX) :] if at >= 0 else line
    return Checkpoint.from_json(json.loads(text.strip()))
