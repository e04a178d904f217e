"""Personal identifiers (card, ID and phone numbers, person references) never leave as raw text.

They are replaced by a keyed hash (stable, so rules and watch lists can still compare them)
and a masked form for display. The key comes from ``LIANFANG_PII_KEY`` or a 0600 key file.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

_key: bytes | None = None


def load_pii_key(data_dir: Path | None = None) -> bytes:
    """The hashing key: ``LIANFANG_PII_KEY`` env, else ``<data_dir>/pii.key`` (created 0600)."""
    env = os.environ.get("LIANFANG_PII_KEY")
    if env:
        return env.encode()
    if data_dir is None:
        raise RuntimeError("LIANFANG_PII_KEY is not set and no data directory to keep a key in")
    path = data_dir / "pii.key"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def set_pii_key(key: bytes) -> None:
    global _key
    _key = key


def _current_key() -> bytes:
    global _key
    if _key is None:
        env = os.environ.get("LIANFANG_PII_KEY")
        # Without configuration (tests, `profile test`) use a per-process random key:
        # references are consistent within the process but never reversible.
        _key = env.encode() if env else secrets.token_bytes(32)
    return _key


def pseudonymise(value: str, purpose: str = "id") -> str:
    """Keyed hash reference, e.g. ``card:3f9a…`` (16 hex digits)."""
    digest = hmac.new(_current_key(), f"{purpose}\x00{value}".encode(), hashlib.sha256)
    return f"{purpose}:{digest.hexdigest()[:16]}"


def mask_tail(value: str, keep: int = 4) -> str:
    """``12345678`` → ``****5678``; short values are fully masked."""
    if len(value) <= keep:
        return "*" * len(value)
    return "*" * min(len(value) - keep, 8) + value[-keep:]


def mask_plate(plate: str) -> str:
    """``浙A12345`` → ``浙A***45``: province and city letter stay, the middle goes."""
    if len(plate) <= 4:
        return plate[:1] + "*" * (len(plate) - 1)
    return plate[:2] + "*" * (len(plate) - 4) + plate[-2:]
