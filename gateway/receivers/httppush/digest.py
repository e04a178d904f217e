"""HTTP Digest authentication, server side (RFC 7616, compatible with RFC 2617 clients), as
GA/T 1400 uses for ``System/Register`` and Hikvision devices offer for their HTTP pushes.

Nonces are stateless (a timestamp and random part signed with a per-process key) and expire
after ``nonce_ttl_s``; an expired one is answered ``stale=true`` so the device retries at once
with the new nonce. Replays are refused: each nonce's nonce-count must grow, and a nonce used
without ``qop`` (RFC 2069 clients) is good once. Responses are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal
from urllib.parse import urlsplit
from urllib.request import parse_http_list

Algorithm = Literal["MD5", "SHA-256"]
_HASHES: dict[str, Callable[[bytes], hashlib._Hash]] = {
    "MD5": hashlib.md5,
    "SHA-256": hashlib.sha256,
}
MAX_TRACKED_NONCES = 10_000


class Verdict(StrEnum):
    OK = "ok"
    STALE = "stale"  # a good response to an expired nonce: challenge again with stale=true
    BAD = "bad"  # wrong password, forged or replayed


@dataclass(frozen=True, slots=True)
class DigestCredentials:
    """The fields of one ``Authorization: Digest …`` header."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None
    opaque: str | None = None


def parse_authorization(header: str | None) -> DigestCredentials | None:
    """The credentials of a Digest ``Authorization`` header; None when absent, not Digest, or
    missing a required field."""
    if not header or header[:7].lower() != "digest ":
        return None
    fields: dict[str, str] = {}
    for item in parse_http_list(header[7:]):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep or not key or key in fields:
            return None  # not key=value, or a field given twice: not a header we trust
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        fields[key] = value
    required = ("username", "realm", "nonce", "uri", "response")
    if any(not fields.get(k) for k in required):
        return None
    return DigestCredentials(
        username=fields["username"],
        realm=fields["realm"],
        nonce=fields["nonce"],
        uri=fields["uri"],
        response=fields["response"].lower(),
        algorithm=fields.get("algorithm", "MD5"),
        qop=fields.get("qop"),
        nc=fields.get("nc"),
        cnonce=fields.get("cnonce"),
        opaque=fields.get("opaque"),
    )


class DigestAuthority:
    """Issues challenges and checks answers for one realm."""

    def __init__(
        self,
        realm: str,
        *,
        algorithm: Algorithm = "MD5",
        nonce_ttl_s: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.realm = realm
        self.algorithm = algorithm
        self.nonce_ttl_s = nonce_ttl_s
        self._clock = clock
        self._key = secrets.token_bytes(32)
        self._opaque = secrets.token_hex(8)
        # nonce → highest nonce-count accepted (-1: used once without qop)
        self._counts: OrderedDict[str, int] = OrderedDict()

    def challenge(self, *, stale: bool = False) -> str:
        """A ``WWW-Authenticate`` value with a fresh nonce."""
        parts = [
            f'realm="{self.realm}"',
            'qop="auth"',
            f'nonce="{self._nonce()}"',
            f'opaque="{self._opaque}"',
            f"algorithm={self.algorithm}",
        ]
        if stale:
            parts.append("stale=true")
        return "Digest " + ", ".join(parts)

    def verify(
        self, credentials: DigestCredentials, *, method: str, path: str, password: str
    ) -> Verdict:
        """Whether ``credentials`` answer one of our nonces for ``method`` on ``path``."""
        c = credentials
        algorithm = c.algorithm.upper()
        sess = algorithm.endswith("-SESS")
        digest = _HASHES.get(algorithm.removesuffix("-SESS"))
        if digest is None or c.realm != self.realm:
            return Verdict.BAD
        if c.qop is not None and (c.qop != "auth" or not c.nc or not c.cnonce):
            return Verdict.BAD
        if urlsplit(c.uri).path != path:
            return Verdict.BAD  # an answer computed for another resource
        issued = self._issued_at(c.nonce)
        if issued is None:
            return Verdict.BAD

        def h(text: str) -> str:
            return digest(text.encode("utf-8")).hexdigest()

        ha1 = h(f"{c.username}:{c.realm}:{password}")
        if sess:
            ha1 = h(f"{ha1}:{c.nonce}:{c.cnonce or ''}")
        ha2 = h(f"{method}:{c.uri}")
        if c.qop:
            expected = h(f"{ha1}:{c.nonce}:{c.nc}:{c.cnonce}:{c.qop}:{ha2}")
        else:
            expected = h(f"{ha1}:{c.nonce}:{ha2}")
        if not hmac.compare_digest(expected, c.response):
            return Verdict.BAD
        if self._clock() - issued > self.nonce_ttl_s:
            return Verdict.STALE
        return Verdict.OK if self._fresh(c.nonce, c.nc) else Verdict.BAD

    # -- nonces --------------------------------------------------------------------------

    def _nonce(self) -> str:
        body = f"{int(self._clock()):x}.{secrets.token_hex(8)}"
        return f"{body}.{self._sign(body)}"

    def _sign(self, body: str) -> str:
        return hmac.new(self._key, body.encode(), hashlib.sha256).hexdigest()[:24]

    def _issued_at(self, nonce: str) -> float | None:
        body, _, mac = nonce.rpartition(".")
        if not body or not hmac.compare_digest(self._sign(body), mac):
            return None
        try:
            return float(int(body.split(".", 1)[0], 16))
        except ValueError:
            return None

    def _fresh(self, nonce: str, nc: str | None) -> bool:
        """Record this use; False for a replay (a nonce-count not above the last one)."""
        try:
            count = int(nc, 16) if nc is not None else -1
        except ValueError:
            return False
        last = self._counts.get(nonce)
        if last is not None and (count == -1 or last == -1 or count <= last):
            return False
        self._counts[nonce] = count
        self._counts.move_to_end(nonce)
        while len(self._counts) > MAX_TRACKED_NONCES:
            self._counts.popitem(last=False)
        return True
