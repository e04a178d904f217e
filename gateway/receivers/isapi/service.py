"""What the ISAPI listener does with one push to ``/isapi/events/<device id>``: check who
sends it, read it, and hand the event document and its pictures to the intake.

Who: the device named in the path, registered in the site files. It authenticates with
digest (its ``httpHosts`` entry: ``httpAuthenticationMethod`` MD5digest, ``userName`` the
device id, the password of its ``password_env``), or, for devices that cannot, it is listed
in ``isapi.unauthenticated`` with the one address it pushes from. A push without credentials
from a device that has a password gets the digest challenge (401) before its body is read.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from gateway.config.sites import SiteRegistry
from gateway.ingest.reasons import Reason
from gateway.receivers.httppush.digest import DigestAuthority, Verdict, parse_authorization
from gateway.receivers.httppush.errors import Refused
from gateway.receivers.httppush.intake import NotStored, PushImage, PushIntake, PushRecord
from gateway.receivers.httppush.unregistered import report_unregistered_panic
from gateway.receivers.isapi.config import IsapiConfig
from gateway.receivers.isapi.parts import read_push

log = logging.getLogger(__name__)

RECEIVER = "isapi"


@dataclass(frozen=True, slots=True)
class Push:
    """The facts of one push request."""

    device_id: str
    method: str
    path: str
    address: str
    content_type: str
    authorization: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


# ISAPI ResponseStatus codes by HTTP status: 1 OK, 2 device busy, 4 invalid operation,
# 6 invalid content.
_CODES = {200: (1, "OK"), 503: (2, "Device Busy"), 400: (6, "Invalid Content")}
_INVALID_OPERATION = (4, "Invalid Operation")


def answer(
    push: Push, status: int, detail: str = "", headers: dict[str, str] | None = None
) -> Answer:
    code, text = _CODES.get(status, _INVALID_OPERATION)
    body = {
        "requestURL": push.path,
        "statusCode": code,
        "statusString": text,
        "subStatusCode": "ok" if status == 200 else detail[:200],
    }
    return Answer(status, body, headers or {})


class IsapiService:
    def __init__(self, config: IsapiConfig, registry: SiteRegistry, intake: PushIntake) -> None:
        self.config = config
        self.registry = registry
        self.intake = intake
        self.digest = DigestAuthority(config.realm)
        self.max_body = int(config.max_body_mb * 1024 * 1024)
        self._max_image_bytes = config.max_image_kb * 1024

    def _password(self, device_id: str) -> str | None:
        found = self.registry.device(device_id)
        if found is None or found[1].password_env is None:
            return None
        password = os.environ.get(found[1].password_env)
        if not password:
            log.error("isapi: device %s: environment variable %s is not set",
                      device_id, found[1].password_env)  # fmt: skip
        return password or None

    def check(self, push: Push) -> Answer | Refused | None:
        """Before the body is read: None when the sender may push, an :class:`Answer` to
        send as it is (the digest challenge), or a :class:`Refused` to quarantine (the body
        is read for that)."""
        pinned = self.config.unauthenticated.get(push.device_id)
        if pinned is not None:
            if self.registry.device(push.device_id) is None:
                return Refused(
                    403, Reason.UNKNOWN_DEVICE, f"device {push.device_id[:40]!r} is not registered"
                )
            if push.address == pinned:
                return None
            return Refused(
                403, Reason.UNAUTHENTICATED,
                f"{push.device_id} may push without credentials from {pinned} only",
            )  # fmt: skip
        password = self._password(push.device_id)
        if password is None:
            return Refused(
                403, Reason.UNKNOWN_DEVICE,
                f"device {push.device_id[:40]!r} is not registered with a password_env",
            )  # fmt: skip
        credentials = parse_authorization(push.authorization)
        if credentials is None:
            return answer(push, 401, "authenticate", {"WWW-Authenticate": self.digest.challenge()})
        if credentials.username != push.device_id:
            return Refused(401, Reason.UNAUTHENTICATED, "digest user is not the device id")
        verdict = self.digest.verify(
            credentials, method=push.method, path=push.path, password=password
        )
        if verdict is Verdict.STALE:
            challenge = self.digest.challenge(stale=True)
            return answer(push, 401, "stale nonce", {"WWW-Authenticate": challenge})
        if verdict is Verdict.BAD:
            return Refused(401, Reason.UNAUTHENTICATED, "wrong digest response")
        return None

    def refuse(self, push: Push, refusal: Refused, body: bytes) -> Answer:
        """Quarantine a refused push (and report it when it reads as a panic)."""
        source = f"{RECEIVER}:{push.method} {push.path}"
        detail = f"{refusal.detail} (from {push.address})"
        if refusal.reason in (Reason.UNAUTHENTICATED, Reason.UNKNOWN_DEVICE) and body:
            panics = self._panic_like(push, body)
            if panics:
                detail = f"PANIC-LIKE ALARM refused: {detail}"
                report_unregistered_panic(
                    receiver=RECEIVER, device_id=push.device_id, source_address=push.address,
                    why=refusal.detail, events=panics, raw=body,
                    handler=self.intake.report_panic,
                )  # fmt: skip
        self.intake.quarantine(source, body, refusal.reason, detail, push.device_id[:128])
        headers = {"WWW-Authenticate": self.digest.challenge()} if refusal.status == 401 else {}
        return answer(push, refusal.status, refusal.detail, headers)

    def _panic_like(self, push: Push, body: bytes) -> list[Any]:
        try:
            read = read_push(
                body, push.content_type, max_parts=self.config.max_parts,
                max_depth=self.intake.ingest.max_json_depth,
            )  # fmt: skip
        except Refused:
            return []
        topic = self.config.topic_for(read.event_type, push.device_id)
        return self.intake.panic_like(PushRecord(topic, read.payload()))

    async def take(self, push: Push, body: bytes) -> Answer:
        """An accepted sender's push: read it, store its events, answer."""
        try:
            read = read_push(
                body, push.content_type, max_parts=self.config.max_parts,
                max_depth=self.intake.ingest.max_json_depth,
            )  # fmt: skip
        except Refused as refusal:
            return self.refuse(push, refusal, body)
        limit = self._max_image_bytes
        pictures = [
            p
            if len(p.data) <= limit
            else PushImage(p.name, b"", problem=f"more than {limit} bytes")
            for p in read.pictures
        ]
        topic = self.config.topic_for(read.event_type, push.device_id)
        try:
            (outcome,) = await self.intake.take([PushRecord(topic, read.payload(), pictures)])
        except NotStored:
            return answer(push, 503, "not stored, send again")
        # A push read but not understood (no profile maps it, an unknown code) is in the
        # quarantine with its reason; answered 200 all the same, or the device resends it
        # forever. ``outcome`` says which, for the log.
        if not outcome.ok:
            log.debug("isapi: push of %s quarantined: %s", push.device_id, outcome.reason)
        return answer(push, 200)
