"""What hot reload watches: a folder's (or file's) files with their modification times and
sizes. Two equal fingerprints mean nothing changed worth reading again."""

from __future__ import annotations

import contextlib
from pathlib import Path

Fingerprint = tuple[tuple[str, int, int], ...]


def tree_fingerprint(path: Path) -> Fingerprint:
    """Every file under ``path`` (or ``path`` itself) as ``(name, mtime_ns, size)``."""
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
    else:
        files = []
    out = []
    for p in files:
        with contextlib.suppress(OSError):  # removed while we looked
            st = p.stat()
            out.append((str(p), st.st_mtime_ns, st.st_size))
    return tuple(out)
