"""What a camera is never allowed to make us do.

* Parse a DTD, expand an entity or fetch an external resource while reading its XML
  (zeep ``Settings`` below; the library's own defaults allow DTDs and huge trees).
* Send us somewhere else: every request goes through :class:`HttpGuard`, which refuses any
  host other than the configured one (also on redirects), and advertised addresses are
  rewritten to the configured host by :func:`rewrite_advertised`.
* Make us read forever: answers are capped at ``max_bytes`` and every request has a timeout.
* Accept broken XML: zeep parses in lxml's *recover* mode when ``strict`` is off (which
  cameras need for their schema liberties), so the guard first checks every XML answer with
  a strict, locked-down lxml parser (no DTD, no entities, no network, no huge trees).

Refusals are :class:`GuardRefused` (not ``aiohttp.ClientError``): they are the camera's fault,
not a network hiccup, and are never retried as transient.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

from aiohttp import ClientHandlerType, ClientRequest, ClientResponse
from lxml import etree
from zeep.settings import Settings

log = logging.getLogger(__name__)

SAFE_SETTINGS = Settings(
    strict=False,  # cameras bend the schema; structure is still checked by our code
    xml_huge_tree=False,  # keep libxml2's depth and text-size limits
    forbid_dtd=True,
    forbid_entities=True,
    forbid_external=True,
)
CHUNK = 64 * 1024


XML_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    recover=False,
)


class GuardRefused(Exception):
    """Base of everything the guard refuses."""


class ForeignHostRefused(GuardRefused):
    """A request (or a redirect) aimed at a host other than the configured one."""


class ResponseTooLarge(GuardRefused):
    """The camera's answer is larger than ``max_response_bytes``."""


class MalformedXml(GuardRefused):
    """The answer claims to be XML but is not well-formed."""


class UnsafeXml(GuardRefused):
    """The answer carries a DTD (external entities, entity bombs)."""


def check_xml(body: bytes) -> None:
    """Raise unless ``body`` is well-formed XML without a DTD (strict, locked-down lxml)."""
    try:
        root = etree.fromstring(body, XML_PARSER)
    except etree.XMLSyntaxError as exc:
        if b"<!DOCTYPE" in body[:4096] or b"<!ENTITY" in body[:4096]:
            raise UnsafeXml(f"DTD in answer: {exc}") from exc
        raise MalformedXml(str(exc)[:300]) from exc
    if root.getroottree().docinfo.doctype or b"<!ENTITY" in body[:65536]:
        raise UnsafeXml("DTD in answer")


def _looks_like_xml(response: ClientResponse, body: bytes) -> bool:
    ctype = response.headers.get("Content-Type", "").lower()
    return "xml" in ctype or body.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def _norm_host(host: str | None) -> str:
    return (host or "").strip("[]").lower()


class HttpGuard:
    """aiohttp client middleware: pin the host and cap the body size.

    The body is read here, with the cap, and kept on the response, so the library's own
    ``await response.read()`` returns it without reading again.
    """

    def __init__(self, allowed_host: str | None, max_bytes: int) -> None:
        self.allowed_host = _norm_host(allowed_host) if allowed_host is not None else None
        self.max_bytes = max_bytes
        self.refused: list[str] = []

    async def __call__(self, request: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        host = _norm_host(request.url.host)
        if self.allowed_host is not None and host != self.allowed_host:
            self.refused.append(str(request.url.with_query(None)))
            raise ForeignHostRefused(
                f"refused to contact {host!r}: only the configured host "
                f"{self.allowed_host!r} is allowed (allow_foreign_hosts is off)"
            )
        response = await handler(request)
        length = response.content_length
        if length is not None and length > self.max_bytes:
            response.close()
            raise ResponseTooLarge(f"answer of {length} bytes exceeds {self.max_bytes}")
        body = bytearray()
        try:
            while True:
                chunk = await response.content.read(CHUNK)
                if not chunk:
                    break
                body += chunk
                if len(body) > self.max_bytes:
                    response.close()
                    raise ResponseTooLarge(f"answer exceeds {self.max_bytes} bytes")
        except BaseException:
            response.close()
            raise
        data = bytes(body)
        if data and _looks_like_xml(response, data):
            check_xml(data)
        response._body = data  # read() returns this instead of reading again
        return response


def rewrite_advertised(
    url: str | None, host: str, port: int, *, allow_foreign: bool, keep_port: bool = False
) -> tuple[str | None, bool]:
    """An address the camera advertised, made safe to follow: ``(url, was_rewritten)``.

    Same host as configured: kept (another port on the same camera is fine). Another host:
    rewritten to the configured ``host:port`` (NAT override), unless ``allow_foreign``.
    Credentials embedded in the URL are dropped. ``keep_port`` keeps the advertised port
    (stream URIs: RTSP runs on its own port). Schemes other than http(s)/rtsp(s) give None.
    """
    if not url:
        return None, False
    try:
        parts = urlsplit(url.strip())
        advertised_port = parts.port
    except ValueError:
        return None, False
    if parts.scheme.lower() not in ("http", "https", "rtsp", "rtsps") or not parts.hostname:
        return None, False
    netloc_host = parts.hostname
    new_port = advertised_port
    rewritten = False
    if not allow_foreign and _norm_host(netloc_host) != _norm_host(host):
        netloc_host = host
        new_port = advertised_port if keep_port else port
        rewritten = True
    shown = f"[{netloc_host}]" if ":" in netloc_host else netloc_host
    netloc = f"{shown}:{new_port}" if new_port else shown
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")), rewritten
