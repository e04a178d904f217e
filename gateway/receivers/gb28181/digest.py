"""SIP digest authentication (RFC 2617 / RFC 3261 §22, MD5) for device REGISTER.

Nonces are stateless: the issue time and an HMAC of it under a per-process secret, so any
challenge we issued can be checked and one older than ``ttl_s`` is *stale* (the device is
challenged again with ``stale=true`` instead of being refused). ``qop=auth`` is accepted when
a device uses it; the challenge offers none, as the GB/T 28181 examples do.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Literal

Verdict = Literal["ok", "stale", "bad"]


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


class DigestAuth:
    def __init__(self, realm: str, *, ttl_s: float, clock: Callable[[], float] = time.time) -> None:
        self.realm = realm
        self.ttl_s = ttl_s
        self.clock = clock
        self._secret = secrets.token_bytes(32)

    def nonce(self) -> str:
        issued = f"{int(self.clock()):x}"
        mac = hmac.new(self._secret, issued.encode(), hashlib.sha256).hexdigest()[:24]
        return f"{issued}{mac}"

    def challenge(self, *, stale: bool = False) -> str:
        """The WWW-Authenticate header value of a 401."""
        value = f'Digest realm="{self.realm}", nonce="{self.nonce()}", algorithm=MD5'
        return value + (", stale=true" if stale else "")

    def _nonce_age(self, nonce: str) -> float | None:
        issued, mac = nonce[:-24], nonce[-24:]
        if not issued or len(issued) > 16:
            return None
        expected = hmac.new(self._secret, issued.encode(), hashlib.sha256).hexdigest()[:24]
        if not hmac.compare_digest(mac, expected):
            return None
        try:
            return self.clock() - int(issued, 16)
        except ValueError:
            return None

    def check(
        self, params: Mapping[str, str], *, method: str, username: str, password: str
    ) -> Verdict:
        """Whether the Authorization parameters prove ``password`` for ``username``."""
        if params.get("username") != username or params.get("realm") != self.realm:
            return "bad"
        nonce, uri, given = (
            params.get("nonce", ""),
            params.get("uri", ""),
            params.get("response", ""),
        )
        if not uri or not given or params.get("algorithm", "MD5").upper() != "MD5":
            return "bad"
        age = self._nonce_age(nonce)
        if age is None:
            return "bad"
        ha1 = _md5(f"{username}:{self.realm}:{password}")
        ha2 = _md5(f"{method}:{uri}")
        qop = params.get("qop")
        if qop is None:
            expected = _md5(f"{ha1}:{nonce}:{ha2}")
        elif qop == "auth":
            nc, cnonce = params.get("nc", ""), params.get("cnonce", "")
            expected = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        else:
            return "bad"
        if not hmac.compare_digest(expected, given.lower()):
            return "bad"
        return "stale" if age > self.ttl_s or age < -5 else "ok"


def authorization(
    *, username: str, realm: str, nonce: str, method: str, uri: str, password: str
) -> str:
    """An Authorization header value (the simulator and the tests play the device)."""
    ha1 = _md5(f"{username}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    response = _md5(f"{ha1}:{nonce}:{ha2}")
    return (
        f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{response}", algorithm=MD5'
    )
