"""Data files readable by their owner only: the database and its WAL, attachments,
evidence snapshots, rule state, keys and checkpoints.

New files are created 0600 and folders 0700 (``open_private``, ``private_dir``); at start-up
``secure_data_dir`` tightens whatever an older version or a copy left readable by others,
and says so in the log. Key files are left alone there: their loaders refuse a readable
key instead (a key that was readable may have been read: it must be replaced, not hidden).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import BinaryIO, cast

log = logging.getLogger(__name__)

FILE_MODE = 0o600
DIR_MODE = 0o700
KEY_SUFFIX = ".key"


def private_dir(path: Path) -> Path:
    """``mkdir -p`` with 0700 for the folders it creates."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    return path


def open_private(path: Path) -> BinaryIO:
    """Open ``path`` for writing bytes, created 0600 (truncated when it exists)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    return cast(BinaryIO, os.fdopen(fd, "wb"))


def write_private(path: Path, data: bytes, *, fsync: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (a 0600 temporary file renamed over it)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    with open_private(tmp) as fh:
        fh.write(data)
        if fsync:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def touch_private(path: Path) -> None:
    """Create ``path`` empty and 0600 unless it exists (so SQLite's WAL and shared-memory
    files, which take the database file's mode, are private too)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, FILE_MODE))


def _loose(mode: int) -> bool:
    return bool(mode & (stat.S_IRWXG | stat.S_IRWXO))


def secure_data_dir(data_dir: Path) -> int:
    """Make the data folder and everything in it owner-only (keys excepted, see above);
    returns how many entries were tightened (each named in one warning)."""
    if not data_dir.exists():
        private_dir(data_dir)
        return 0
    fixed: list[str] = []
    for root, dirs, files in os.walk(data_dir):
        base = Path(root)
        for name, want in [
            (".", DIR_MODE),
            *((d, DIR_MODE) for d in dirs),
            *((f, FILE_MODE) for f in files),
        ]:
            path = base if name == "." else base / name
            if path.suffix == KEY_SUFFIX and want == FILE_MODE:
                continue
            try:
                st = path.lstat()
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode) or not _loose(st.st_mode):
                continue
            os.chmod(path, stat.S_IMODE(st.st_mode) & want)
            fixed.append(str(path))
    if fixed:
        shown = ", ".join(fixed[:10]) + (f" and {len(fixed) - 10} more" if len(fixed) > 10 else "")
        log.warning(
            "data folder: %d entries were readable by group or others and are now owner-only: %s",
            len(fixed), shown,
        )  # fmt: skip
    return len(fixed)
