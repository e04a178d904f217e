"""Read one ISAPI push: the event document (JSON or XML) and its pictures.

Shapes seen from Hikvision devices pushing to ``httpHosts``:

- ``multipart/form-data``: access controllers send the JSON ``event_log`` part (named after
  the event type on some firmware) and a ``Picture`` part; ANPR cameras an ``anpr.xml`` part
  (``EventNotificationAlert``) and ``licensePlatePicture.jpg`` / ``detectionPicture.jpg``.
- a bare JSON body (``application/json``) or XML body (``application/xml``, ``text/xml``),
  such as heartbeats.

The first JSON or XML part is the event; image parts (by content type or JPEG bytes) are the
pictures. XML goes through ``safe_xml`` (no DTD, no entities); JSON through ``strict_json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from gateway.ingest.reasons import Reason
from gateway.receivers.httppush.errors import Refused
from gateway.receivers.httppush.intake import JPEG_MAGIC, PushImage
from gateway.receivers.httppush.safe_xml import parse_xml
from gateway.receivers.httppush.strict_json import parse_json


@dataclass(slots=True)
class Part:
    headers: dict[str, str] = field(default_factory=dict)
    data: bytearray = field(default_factory=bytearray)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    @property
    def name(self) -> str:
        _, params = parse_options_header(self.headers.get("content-disposition", ""))
        value = params.get(b"filename") or params.get(b"name") or b""
        return value.decode("utf-8", "replace")[:100]


@dataclass(frozen=True, slots=True)
class IsapiPush:
    """The event document (``EventNotificationAlert`` unwrapped), its bytes, its format,
    and the pictures."""

    document: dict[str, Any]
    raw: bytes
    format: str  # "json" | "xml"
    pictures: list[PushImage]

    @property
    def event_type(self) -> str:
        value = self.document.get("eventType")
        return value if isinstance(value, str) else ""

    def payload(self) -> bytes:
        """The document as the profiles read it: JSON (XML converted, JSON as sent)."""
        if self.format == "json":
            return self.raw
        return json.dumps(self.document, ensure_ascii=False, separators=(",", ":")).encode()


def read_push(body: bytes, content_type: str, *, max_parts: int, max_depth: int) -> IsapiPush:
    """The push in ``body``, or :class:`Refused` (400) saying why not."""
    mime, params = parse_options_header(content_type)
    kind = mime.decode("latin-1").lower()
    if kind.startswith("multipart/"):
        boundary = params.get(b"boundary")
        if not boundary:
            raise Refused(400, Reason.MALFORMED_BODY, "multipart without a boundary")
        return _from_parts(_parts(body, boundary, max_parts), max_depth)
    document, fmt = _document(body, kind, max_depth)
    return IsapiPush(document, body, fmt, [])


def _parts(body: bytes, boundary: bytes, max_parts: int) -> list[Part]:
    parts: list[Part] = []
    field_name = bytearray()
    field_value = bytearray()

    def begin() -> None:
        if len(parts) >= max_parts:
            raise Refused(400, Reason.OVERSIZE, f"more than {max_parts} parts")
        parts.append(Part())

    def header_end() -> None:
        parts[-1].headers[field_name.decode("latin-1").lower()] = field_value.decode("latin-1")
        field_name.clear()
        field_value.clear()

    callbacks: Any = {
        "on_part_begin": begin,
        "on_part_data": lambda data, start, end: parts[-1].data.extend(data[start:end]),
        "on_header_field": lambda data, start, end: field_name.extend(data[start:end]),
        "on_header_value": lambda data, start, end: field_value.extend(data[start:end]),
        "on_header_end": header_end,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except (MultipartParseError, ValueError) as exc:
        raise Refused(400, Reason.MALFORMED_BODY, f"multipart: {exc}"[:200]) from exc
    return parts


def _from_parts(parts: list[Part], max_depth: int) -> IsapiPush:
    event: tuple[dict[str, Any], bytes, str] | None = None
    pictures: list[PushImage] = []
    for part in parts:
        data = bytes(part.data)
        if data.startswith(JPEG_MAGIC) or part.content_type.startswith("image/"):
            pictures.append(PushImage(part.name or "picture", data))
        elif event is None and _is_document(part, data):
            document, fmt = _document(data, part.content_type, max_depth)
            event = (document, data, fmt)
    if event is None:
        raise Refused(400, Reason.MALFORMED_BODY, "no JSON or XML event part")
    document, raw, fmt = event
    return IsapiPush(document, raw, fmt, pictures)


def _is_document(part: Part, data: bytes) -> bool:
    if "json" in part.content_type or "xml" in part.content_type:
        return True
    return data.lstrip()[:1] in (b"{", b"<")


def _document(data: bytes, content_type: str, max_depth: int) -> tuple[dict[str, Any], str]:
    start = data.lstrip()[:1]
    if "xml" in content_type or (not content_type.endswith("json") and start == b"<"):
        root = parse_xml(data, max_depth=max_depth)
        inner = next(iter(root.values()))
        if not isinstance(inner, dict):
            raise Refused(400, Reason.MALFORMED_BODY, "the XML event has no elements")
        return inner, "xml"
    value = parse_json(data, max_depth=max_depth)
    if not isinstance(value, dict):
        raise Refused(400, Reason.MALFORMED_BODY, "the JSON event is not an object")
    return value, "json"
