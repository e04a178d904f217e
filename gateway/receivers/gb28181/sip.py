"""SIP messages for the GB/T 28181 server: a small, bounded parser and builder of our own.

Why not a library: ``sipmessage`` (typed, well kept) rejects the URIs GB/T 28181 devices
send — the domain is ten digits (``sip:34020000001320000001@3402000000``), which RFC 3261's
host grammar does not allow — and ``aiosipua`` is a voice-call stack (INVITE dialogs, RTP)
first released in 2026. What the server needs is small: the start line, headers (compact
forms, folded lines), the first Via's branch, From/To user and tag, Call-ID, CSeq, Contact's
expires, Authorization's digest parameters, Content-Length/-Type. Everything is bounded:
message size (checked before parsing), header count and line length.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime

MANSCDP = "Application/MANSCDP+xml"
ALLOW = "REGISTER, MESSAGE, NOTIFY, OPTIONS, ACK, BYE"
USER_AGENT = "Lianfang GB28181"
MAX_HEADERS = 100
COMPACT = {
    "v": "Via",
    "f": "From",
    "t": "To",
    "i": "Call-ID",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "o": "Event",
}
_CANONICAL = {
    n.lower(): n
    for n in (
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Content-Length",
        "Content-Type",
        "Expires",
        "Authorization",
        "Max-Forwards",
        "User-Agent",
        "Date",
        "Event",
        "Supported",
    )
}
_REQUEST_LINE = re.compile(r"^([A-Za-z]{1,20}) (\S{1,512}) SIP/2\.0$")
_STATUS_LINE = re.compile(r"^SIP/2\.0 ([1-6][0-9]{2}) (.{0,128})$")
_TOKEN = re.compile(r"^[A-Za-z0-9.!%*_+`'~-]{1,64}$")
_URI_USER = re.compile(r"^sips?:([^@;>?\s]{1,64})@", re.I)
_CSEQ = re.compile(r"^([0-9]{1,10})\s+([A-Za-z]{1,20})$")
_AUTH_PARAM = re.compile(
    r'\s*([A-Za-z0-9_-]{1,32})\s*=\s*("(?:[^"\\]|\\.){0,512}"|[^\s,]{1,512})\s*(?:,|$)'
)


class SipError(Exception):
    """A message that cannot be processed; ``status`` is the SIP answer, ``request`` the
    request to answer when its headers could be read."""

    def __init__(self, status: int, detail: str, *, request: SipMessage | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.request = request


@dataclass(frozen=True, slots=True)
class Peer:
    """Where a message came from: the only address we ever send to (never Via or Contact)."""

    transport: str  # "udp" or "tcp"
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.transport}:{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Address:
    """A From/To/Contact value: ``"name" <uri>;params``."""

    text: str  # as received, without parameters outside the brackets
    uri: str
    params: dict[str, str]

    @property
    def user(self) -> str:
        m = _URI_USER.match(self.uri)
        return m.group(1) if m else ""


@dataclass(slots=True)
class SipMessage:
    method: str  # the request's method, or "" for a response
    uri: str
    status: int  # 0 for a request
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return self.status == 0

    def get(self, name: str) -> str | None:
        key = name.lower()
        return next((v for n, v in self.headers if n.lower() == key), None)

    def get_all(self, name: str) -> list[str]:
        key = name.lower()
        return [v for n, v in self.headers if n.lower() == key]

    def require(self, name: str) -> str:
        value = self.get(name)
        if not value:
            raise SipError(400, f"no {name} header")
        return value

    @property
    def call_id(self) -> str:
        return self.require("Call-ID")

    @property
    def cseq(self) -> tuple[int, str]:
        m = _CSEQ.match(self.require("CSeq"))
        if m is None:
            raise SipError(400, "malformed CSeq")
        return int(m.group(1)), m.group(2).upper()

    @property
    def from_address(self) -> Address:
        return address(self.require("From"))

    @property
    def to_address(self) -> Address:
        return address(self.require("To"))

    @property
    def vias(self) -> list[str]:
        return [v.strip() for value in self.get_all("Via") for v in split_commas(value)]

    @property
    def branch(self) -> str:
        return params(self.vias[0].partition(";")[2]).get("branch", "") if self.vias else ""

    @property
    def contacts(self) -> list[Address]:
        return [
            address(v)
            for value in self.get_all("Contact")
            for v in split_commas(value)
            if v.strip() != "*"
        ]

    def __bytes__(self) -> bytes:
        start = (
            f"{self.method} {self.uri} SIP/2.0"
            if self.is_request
            else f"SIP/2.0 {self.status} {self.uri}"
        )
        lines = [start, *(f"{n}: {v}" for n, v in self.headers if n != "Content-Length")]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


def split_commas(value: str) -> list[str]:
    """Split a header value on commas outside quotes and angle brackets."""
    out, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(value):
        if ch == '"' and (i == 0 or value[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">":
            depth = max(depth - 1, 0)
        elif ch == "," and not quoted and depth == 0:
            out.append(value[start:i])
            start = i + 1
    out.append(value[start:])
    return [v for v in (s.strip() for s in out) if v]


def params(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            out[name.strip().lower()] = value.strip().strip('"')
    return out


def address(value: str) -> Address:
    value = value.strip()
    if "<" in value:
        start, end = value.find("<"), value.find(">")
        if end < start:
            raise SipError(400, "malformed address")
        return Address(value[: end + 1], value[start + 1 : end].strip(), params(value[end + 1 :]))
    uri, _, rest = value.partition(";")
    return Address(uri.strip(), uri.strip(), params(rest))


def digest_params(value: str) -> dict[str, str] | None:
    """The parameters of a ``Digest …`` Authorization value; None when it is not one."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    out: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _AUTH_PARAM.match(rest, pos)
        if m is None:
            return None
        raw = m.group(2)
        out[m.group(1).lower()] = raw[1:-1].replace('\\"', '"') if raw.startswith('"') else raw
        pos = m.end()
    return out


def parse(data: bytes, limit: int) -> SipMessage:
    """One SIP message; ``SipError`` (400 or 413, with the request when it can be answered)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise SipError(400, "no end of headers")
    if len(data) > limit:
        detail = f"message of {len(data)} bytes (at most {limit})"
        try:
            request = _headers(head) if len(head) < limit else None
        except SipError:
            request = None
        raise SipError(413, detail, request=request if request and request.is_request else None)
    message = _headers(head)
    message.body = body
    declared = message.get("Content-Length")
    if declared is not None and (not declared.strip().isdigit() or int(declared) != len(body)):
        raise SipError(
            400,
            f"Content-Length {declared[:12]!r} but {len(body)} bytes of body",
            request=message if message.is_request else None,
        )
    return message


def _headers(head: bytes) -> SipMessage:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipError(400, "header section is not UTF-8") from None
    lines = text.split("\r\n")
    start = lines[0].strip()
    if m := _REQUEST_LINE.match(start):
        message = SipMessage(m.group(1).upper(), m.group(2), 0)
    elif m := _STATUS_LINE.match(start):
        message = SipMessage("", m.group(2), int(m.group(1)))
    else:
        raise SipError(400, f"not a SIP start line: {start[:60]!r}")
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and message.headers:  # folded continuation
            name, value = message.headers[-1]
            message.headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not _TOKEN.match(name):
            raise SipError(400, f"malformed header line {line[:40]!r}")
        name = COMPACT.get(name.lower()) or _CANONICAL.get(name.lower(), name)
        message.headers.append((name, value.strip()))
        if len(message.headers) > MAX_HEADERS:
            raise SipError(400, f"more than {MAX_HEADERS} headers")
    if message.is_request:
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            message.require(name)
        message.cseq  # noqa: B018 - checks its form
    return message


def response(request: SipMessage, code: int, phrase: str, *, body: bytes = b"") -> SipMessage:
    """A response copying Via, From, To (with a tag added), Call-ID and CSeq (RFC 3261 §8.2.6)."""
    to = request.require("To")
    if code > 100 and "tag" not in address(to).params:
        to = f"{to};tag={secrets.token_hex(6)}"
    headers = [("Via", v) for v in request.get_all("Via")]
    headers += [
        ("From", request.require("From")),
        ("To", to),
        ("Call-ID", request.call_id),
        ("CSeq", request.require("CSeq")),
        ("User-Agent", USER_AGENT),
    ]
    return SipMessage("", phrase, code, headers, body)


def new_request(
    method: str,
    *,
    target_id: str,
    peer: Peer,
    server_id: str,
    domain: str,
    local_host: str,
    local_port: int,
    cseq: int,
    body: bytes = b"",
    content_type: str = MANSCDP,
) -> SipMessage:
    """A request from the server to a device, sent to the device's own source address."""
    branch = "z9hG4bK" + secrets.token_hex(8)
    headers = [
        (
            "Via",
            f"SIP/2.0/{peer.transport.upper()} {local_host}:{local_port};rport;branch={branch}",
        ),
        ("From", f"<sip:{server_id}@{domain}>;tag={secrets.token_hex(6)}"),
        ("To", f"<sip:{target_id}@{domain}>"),
        ("Call-ID", secrets.token_hex(12)),
        ("CSeq", f"{cseq} {method}"),
        ("Max-Forwards", "70"),
        ("User-Agent", USER_AGENT),
    ]
    if body:
        headers.append(("Content-Type", content_type))
    return SipMessage(method, f"sip:{target_id}@{peer.host}:{peer.port}", 0, headers, body)


def gb_date(at: datetime) -> str:
    """The Date header GB/T 28181 devices set their clock from: local time, milliseconds."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}"
