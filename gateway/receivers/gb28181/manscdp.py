"""MANSCDP bodies (GB/T 28181-2016 appendix A): the XML inside MESSAGE and NOTIFY.

Bodies are GB2312 by the standard (devices often send GBK or UTF-8 in practice): the bytes are
decoded here — GB18030, a superset of both Chinese encodings, unless the prolog says UTF-8 —
and parsed by defusedxml with DTDs, entities and external references forbidden. Parsed
documents are flattened into ``Manscdp``: the root (``Notify``, ``Response``, ``Query``),
``CmdType``, ``SN``, ``DeviceID`` and the fields each command needs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

_PROLOG = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9_.-]+)[\"']", re.I)
_DECL = re.compile(r"^\s*<\?xml[^>]*\?>")
MAX_ITEMS = 4096  # catalog items taken from one response


class XmlRefused(Exception):
    """A body we do not parse; ``forbidden`` when it carried a DTD or entities."""

    def __init__(self, detail: str, *, forbidden: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.forbidden = forbidden


@dataclass(frozen=True, slots=True)
class CatalogItem:
    device_id: str
    name: str = ""
    manufacturer: str = ""
    model: str = ""
    status: str = ""
    parent_id: str = ""


@dataclass(frozen=True, slots=True)
class Manscdp:
    root: str  # Notify, Response, Query, Control
    cmd_type: str
    sn: str
    device_id: str
    fields: dict[str, str] = field(default_factory=dict)  # direct children (text), and Info/*
    items: tuple[CatalogItem, ...] = ()
    sum_num: int | None = None


def decode(body: bytes) -> str:
    declared = _PROLOG.match(body)
    name = declared.group(1).decode().lower() if declared else ""
    encodings = ["utf-8", "gb18030"] if name in ("utf-8", "utf8") else ["gb18030", "utf-8"]
    for encoding in encodings:
        try:
            return body.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise XmlRefused(f"body is neither {encodings[0]} nor {encodings[1]}")


def parse(body: bytes) -> Manscdp:
    text = _DECL.sub("", decode(body), count=1)  # the decoded text no longer is GB2312
    if "<!DOCTYPE" in text.upper() or "<!ENTITY" in text.upper():
        raise XmlRefused("XML with a DTD or entities", forbidden=True)
    try:
        root = fromstring(text, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise XmlRefused(f"XML refused: {exc.__class__.__name__}", forbidden=True) from None
    except ParseError as exc:
        raise XmlRefused(f"not well-formed XML: {exc}"[:200]) from None
    fields = {child.tag: (child.text or "").strip() for child in root if len(child) == 0}
    info = root.find("Info")
    if info is not None:
        for child in info.iter():
            if child is not info and len(child) == 0:
                fields.setdefault(child.tag, (child.text or "").strip())
    cmd_type = fields.get("CmdType", "")
    if not cmd_type:
        raise XmlRefused(f"<{root.tag}> without CmdType")
    return Manscdp(
        root=root.tag,
        cmd_type=cmd_type,
        sn=fields.get("SN", ""),
        device_id=fields.get("DeviceID", ""),
        fields=fields,
        items=_items(root),
        sum_num=_int(fields.get("SumNum")),
    )


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _items(root: Element) -> tuple[CatalogItem, ...]:
    device_list = root.find("DeviceList")
    if device_list is None:
        return ()
    out: list[CatalogItem] = []
    for item in device_list.findall("Item")[:MAX_ITEMS]:

        def text(tag: str, item: Element = item) -> str:
            return (item.findtext(tag) or "").strip()[:128]

        if text("DeviceID"):
            out.append(
                CatalogItem(
                    device_id=text("DeviceID"),
                    name=text("Name"),
                    manufacturer=text("Manufacturer"),
                    model=text("Model"),
                    status=text("Status"),
                    parent_id=text("ParentID"),
                )
            )
    return tuple(out)


def _xml(root: str, body: str) -> bytes:
    text = f'<?xml version="1.0" encoding="GB2312"?>\r\n<{root}>\r\n{body}</{root}>\r\n'
    return text.encode("gb18030")


def _escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def catalog_query(sn: int, device_id: str) -> bytes:
    return _xml(
        "Query",
        f"<CmdType>Catalog</CmdType>\r\n<SN>{sn}</SN>\r\n<DeviceID>{_escape(device_id)}</DeviceID>\r\n",
    )


def alarm_response(sn: str, device_id: str) -> bytes:
    """The server's answer to an alarm notification (报警通知应答)."""
    return _xml(
        "Response",
        f"<CmdType>Alarm</CmdType>\r\n<SN>{_escape(sn)}</SN>\r\n"
        f"<DeviceID>{_escape(device_id)}</DeviceID>\r\n<Result>OK</Result>\r\n",
    )


def notify(cmd_type: str, sn: int, device_id: str, **children: str) -> bytes:
    """A device's Notify (the simulator and the tests play the device)."""
    extra = "".join(f"<{k}>{_escape(v)}</{k}>\r\n" for k, v in children.items())
    return _xml(
        "Notify",
        f"<CmdType>{cmd_type}</CmdType>\r\n<SN>{sn}</SN>\r\n"
        f"<DeviceID>{_escape(device_id)}</DeviceID>\r\n{extra}",
    )


def alarm_notify(
    sn: int,
    device_id: str,
    *,
    priority: int,
    method: int,
    alarm_type: int | None,
    time: str,
    description: str = "",
) -> bytes:
    """A device's alarm notification (报警通知), GB2312 like a real device's."""
    info = f"<Info>\r\n<AlarmType>{alarm_type}</AlarmType>\r\n</Info>\r\n" if alarm_type else ""
    return _xml(
        "Notify",
        f"<CmdType>Alarm</CmdType>\r\n<SN>{sn}</SN>\r\n<DeviceID>{_escape(device_id)}</DeviceID>\r\n"
        f"<AlarmPriority>{priority}</AlarmPriority>\r\n<AlarmMethod>{method}</AlarmMethod>\r\n"
        f"<AlarmTime>{_escape(time)}</AlarmTime>\r\n"
        f"<AlarmDescription>{_escape(description)}</AlarmDescription>\r\n{info}",
    )
