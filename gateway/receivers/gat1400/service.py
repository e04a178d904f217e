"""What each GA/T 1400 call does: registration with digest authentication, keepalive,
unregistration, the server's time, and record lists to stored events.

Routes (``routes.py``) hand over the call's facts and the body; answers come back as
:class:`Answer` (HTTP status, the standard's JSON, headers). Records accepted and stored are
also offered to ``listeners`` (an uplink to a higher 视图库 would be one: it re-sends them as
``SubscribeNotification``s), after the device has its answer's data committed.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from gateway.config.sites import SiteRegistry
from gateway.events import utcnow
from gateway.ingest.reasons import Reason
from gateway.receivers.gat1400 import protocol as p
from gateway.receivers.gat1400.config import Gat1400Config
from gateway.receivers.gat1400.records import Item, list_items, to_item
from gateway.receivers.gat1400.registrations import Registrations
from gateway.receivers.httppush.digest import DigestAuthority, Verdict, parse_authorization
from gateway.receivers.httppush.errors import Refused
from gateway.receivers.httppush.intake import NotStored, PushIntake, PushRecord, RecordOutcome
from gateway.receivers.httppush.strict_json import parse_json

log = logging.getLogger(__name__)

RECEIVER = "gat1400"


@dataclass(frozen=True, slots=True)
class Call:
    """The facts of one HTTP request the service needs."""

    method: str
    path: str
    address: str
    authorization: str | None = None
    user_identify: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class RecordListener(Protocol):
    """Told of every record stored (an uplink to a higher 视图库, a live view)."""

    async def accepted(
        self, kind: p.ObjectKind, device_id: str, record: dict[str, Any]
    ) -> None: ...


class Gat1400Service:
    def __init__(
        self,
        config: Gat1400Config,
        registry: SiteRegistry,
        intake: PushIntake,
        *,
        timezone: str,
        registrations: Registrations | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.intake = intake
        self.zone = ZoneInfo(timezone)
        self.registrations = registrations or Registrations(config.session_timeout_s)
        self.digest = DigestAuthority(config.realm, algorithm=config.digest_algorithm)
        self.listeners: list[RecordListener] = []
        self._platforms = frozenset(config.platforms)
        self._max_image_bytes = config.max_image_kb * 1024

    # -- answers ---------------------------------------------------------------------

    def _status(
        self, call: Call, code: p.StatusCode, object_id: str = "", detail: str = ""
    ) -> dict[str, Any]:
        local = p.local_time(utcnow(), self.zone)
        return p.status_object(call.path, code, object_id=object_id, local=local, detail=detail)

    def answer(
        self, call: Call, status: int, code: p.StatusCode, object_id: str = "", detail: str = ""
    ) -> Answer:
        headers = {}
        if status == 401:
            headers["WWW-Authenticate"] = self.digest.challenge()
        return Answer(status, p.single(self._status(call, code, object_id, detail)), headers)

    def refused(self, call: Call, refusal: Refused, raw: bytes, device_id: str | None) -> Answer:
        """Quarantine a refused call and answer it in the standard's form."""
        self.intake.quarantine(
            f"{RECEIVER}:{call.method} {call.path}", raw, refusal.reason,
            f"{refusal.detail} (from {call.address})", device_id,
        )  # fmt: skip
        return self.answer(
            call, refusal.status, p.status_for(refusal.reason), device_id or "", refusal.detail
        )

    # -- System ----------------------------------------------------------------------

    def password_of(self, device_id: str) -> str | None:
        """The device's password, when it is registered with a ``password_env`` that is set."""
        found = self.registry.device(device_id)
        if found is None or found[1].password_env is None:
            return None
        password = os.environ.get(found[1].password_env)
        if not password:
            log.error(
                "gat1400: device %s: environment variable %s is not set",
                device_id, found[1].password_env,
            )  # fmt: skip
            return None
        return password

    async def _system_event(self, device_id: str, action: str) -> None:
        """Register, Keepalive, UnRegister as the device's online, heartbeat and offline
        events (the ``gat1400`` profile's ``system`` mapping): device health sees them."""
        document = {"Action": action, "DeviceID": device_id, "Time": utcnow().isoformat()}
        record = PushRecord(f"gat1400/{device_id}/System", json.dumps(document).encode())
        try:
            await self.intake.take([record])
        except NotStored:  # its state only: the call itself succeeded
            log.warning("gat1400: %s of %s not stored in time", action, device_id)

    async def register(self, call: Call, body: bytes) -> Answer:
        """``POST /VIID/System/Register``: digest over the device's password, then live."""
        credentials = parse_authorization(call.authorization)
        if credentials is None:  # the first step of every registration: the challenge
            return self.answer(call, 401, p.StatusCode.INVALID_OPERATION, detail="authenticate")
        device_id = credentials.username
        password = self.password_of(device_id)
        if password is None:
            refusal = Refused(
                403, Reason.UNKNOWN_DEVICE,
                f"device {device_id[:40]!r} is not registered with a password_env",
            )  # fmt: skip
            return self.refused(call, refusal, body, device_id[:128])
        verdict = self.digest.verify(
            credentials, method=call.method, path=call.path, password=password
        )
        if verdict is Verdict.STALE:
            return Answer(
                401,
                p.single(self._status(call, p.StatusCode.INVALID_OPERATION, device_id, "stale")),
                {"WWW-Authenticate": self.digest.challenge(stale=True)},
            )
        if verdict is Verdict.BAD:
            refusal = Refused(401, Reason.UNAUTHENTICATED, "wrong digest response")
            return self.refused(call, refusal, body, device_id)
        try:
            named = p.object_device_id(parse_json(body), "RegisterObject") if body else None
        except Refused as bad_body:
            return self.refused(call, bad_body, body, device_id)
        if named is not None and named != device_id:
            other = Refused(
                403, Reason.UNAUTHENTICATED, f"RegisterObject names {named[:40]!r}, not the user"
            )
            return self.refused(call, other, body, device_id)
        self.registrations.register(device_id, call.address)
        log.info("gat1400: %s registered from %s", device_id, call.address)
        await self._system_event(device_id, "Register")
        return self.answer(call, 200, p.StatusCode.OK, device_id)

    async def keepalive(self, call: Call, body: bytes) -> Answer:
        """``POST /VIID/System/Keepalive``: a live registration from the same address."""
        device_id = self._named(call, body, "KeepaliveObject")
        if device_id is None or not self.registrations.touch(device_id, call.address):
            return self.answer(
                call, 401, p.StatusCode.INVALID_OPERATION, device_id or "", "not registered"
            )
        await self._system_event(device_id, "Keepalive")
        return self.answer(call, 200, p.StatusCode.OK, device_id)

    async def unregister(self, call: Call, body: bytes) -> Answer:
        """``POST /VIID/System/UnRegister``: only the registered device itself."""
        device_id = self._named(call, body, "UnRegisterObject")
        if device_id is None or not self.registrations.live(device_id, call.address):
            return self.answer(
                call, 401, p.StatusCode.INVALID_OPERATION, device_id or "", "not registered"
            )
        self.registrations.unregister(device_id)
        log.info("gat1400: %s unregistered", device_id)
        await self._system_event(device_id, "UnRegister")
        return self.answer(call, 200, p.StatusCode.OK, device_id)

    def time(self) -> Answer:
        """``GET /VIID/System/Time``."""
        local = p.local_time(utcnow(), self.zone)
        return Answer(200, p.system_time(self.config.server_id, local, self.zone.key))

    def _named(self, call: Call, body: bytes, key: str) -> str | None:
        """The device a system call is about: its object's ``DeviceID``, else the header."""
        try:
            named = p.object_device_id(parse_json(body), key) if body else None
        except Refused:
            named = None
        return named or call.user_identify

    # -- records ---------------------------------------------------------------------

    def sender(self, call: Call) -> str | None:
        """The device making this call: valid digest credentials on the call itself, or the
        ``User-Identify`` of a live registration from this same address. There is no
        fallback on the address alone: devices behind one address (NAT, loopback) would
        pass for each other."""
        credentials = parse_authorization(call.authorization)
        if credentials is not None:
            password = self.password_of(credentials.username)
            if password is None:
                return None
            verdict = self.digest.verify(
                credentials, method=call.method, path=call.path, password=password
            )
            if verdict is not Verdict.OK:
                return None
            self.registrations.touch(credentials.username, call.address)
            return credentials.username
        if call.user_identify and self.registrations.touch(call.user_identify, call.address):
            return call.user_identify
        return None

    async def records(self, kind: p.ObjectKind, call: Call, body: bytes) -> Answer:
        """``POST /VIID/<kind>``: every record to an event; one status per record."""
        sender = self.sender(call)
        if sender is None:
            refusal = Refused(401, Reason.UNAUTHENTICATED, "not registered (System/Register first)")
            return self.refused(call, refusal, body, call.user_identify)
        try:
            raw_items = list_items(
                parse_json(body, max_depth=self.intake.ingest.max_json_depth),
                kind,
                max_records=self.config.max_records,
            )
        except Refused as refusal:
            return self.refused(call, refusal, body, sender)
        items = [
            to_item(r, kind, sender=sender, zone=self.zone, max_image_bytes=self._max_image_bytes)
            for r in raw_items
        ]
        allowed = [i for i in items if i.device_id == sender or sender in self._platforms]
        try:
            outcomes = await self.intake.take([i.record for i in allowed])
        except NotStored:
            return self.answer(
                call, 503, p.StatusCode.DEVICE_BUSY, sender, "not stored, send again"
            )
        by_item = dict(zip((id(i) for i in allowed), outcomes, strict=True))
        statuses = []
        for item, raw in zip(items, raw_items, strict=True):
            outcome = by_item.get(id(item))
            if outcome is None:
                self._not_allowed(call, sender, item)
                statuses.append(
                    self._status(call, p.StatusCode.INVALID_OPERATION, item.record_id,
                                 f"{sender} may not post records of {item.device_id}")
                )  # fmt: skip
                continue
            statuses.append(self._record_status(call, item, outcome))
            if outcome.ok and outcome.events:
                await self._tell(kind, item.device_id, raw)
        return Answer(200, p.status_list(statuses))

    def _record_status(self, call: Call, item: Item, outcome: RecordOutcome) -> dict[str, Any]:
        if outcome.ok:
            return self._status(call, p.StatusCode.OK, item.record_id)
        assert outcome.reason is not None
        return self._status(
            call, p.status_for(outcome.reason), item.record_id, outcome.detail[:200]
        )

    def _not_allowed(self, call: Call, sender: str, item: Item) -> None:
        self.intake.quarantine(
            f"{RECEIVER}:{call.method} {call.path}", item.record.payload, Reason.UNAUTHENTICATED,
            f"sender {sender} may post its own records only (platforms: gat1400.platforms)",
            item.device_id[:128],
        )  # fmt: skip

    async def _tell(self, kind: p.ObjectKind, device_id: str, record: dict[str, Any]) -> None:
        for listener in self.listeners:
            try:
                await listener.accepted(kind, device_id, record)
            except Exception:  # a listener's failure never fails the device's post
                log.exception("gat1400: listener %r failed", listener)
