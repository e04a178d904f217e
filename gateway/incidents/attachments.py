"""Evidence attachments on disk: ``<data_dir>/attachments/<incident>/<id>.<ext>``.

Only images are accepted, recognised by their magic bytes (never by name or declared type):
JPEG, PNG, WebP. Size is capped (``MAX_BYTES``); the API stops reading beyond it.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from pathlib import Path
from typing import Any

from gateway.storage.files import private_dir, write_private

MAX_BYTES = 10 * 1024 * 1024
TYPES = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


class BadAttachment(ValueError):
    pass


def detect_type(head: bytes) -> str | None:
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def clean_name(name: str) -> str:
    """A display name only (files are stored under a random id): no paths, no controls."""
    base = re.split(r"[\\/]", name)[-1]
    base = re.sub(r"[\x00-\x1f\x7f]", "", base).strip() or "attachment"
    return base[:200]


def path_for(data_dir: Path, incident_id: int, attachment_id: str, content_type: str) -> Path:
    return data_dir / "attachments" / str(incident_id) / f"{attachment_id}.{TYPES[content_type]}"


def write(data_dir: Path, incident_id: int, data: bytes, content_type: str) -> dict[str, Any]:
    if len(data) > MAX_BYTES:
        raise BadAttachment(f"larger than {MAX_BYTES // (1024 * 1024)} MiB")
    attachment_id = secrets.token_hex(12)
    target = path_for(data_dir, incident_id, attachment_id, content_type)
    private_dir(target.parent)
    write_private(target, data, fsync=True)  # owner-only: pictures of people and homes
    return {
        "id": attachment_id,
        "content_type": content_type,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
