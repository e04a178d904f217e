"""MESSAGE and NOTIFY requests with a MANSCDP body: Keepalive, Alarm, Catalog responses.

An alarm is answered 200 only once it is stored (a panic once its incident is), then the
server sends the alarm response (报警通知应答) the standard asks for. An alarm from a known
device that has not registered since the gateway started is taken all the same — an alarm is
never dropped — and marked ``authenticated: false``. A keepalive from a device that is not
registered is refused (403), so that the device registers again.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway.config.sites import DeviceConfig, SiteConfig
from gateway.events import ATTRIBUTE_MODELS, DeviceKind, Event
from gateway.ingest.reasons import Reason
from gateway.receivers.gb28181 import manscdp, sip
from gateway.receivers.gb28181.alarms import UnknownAlarm, classify
from gateway.receivers.gb28181.sessions import SOURCE

if TYPE_CHECKING:
    from gateway.receivers.gb28181.server import Gb28181Server

log = logging.getLogger(__name__)


class MessageHandler:
    def __init__(self, server: Gb28181Server) -> None:
        self.server = server

    async def handle(self, request: sip.SipMessage, peer: sip.Peer, raw: bytes) -> bytes:
        srv = self.server
        content_type = (request.get("Content-Type") or "").split(";")[0].strip()
        if request.body and content_type and content_type.lower() != sip.MANSCDP.lower():
            srv.reject(peer, Reason.MALFORMED_XML, f"Content-Type {content_type[:60]!r}", None, raw)
            return srv.answer(request, 415, "Unsupported Media Type")
        try:
            body = manscdp.parse(request.body)
        except manscdp.XmlRefused as exc:
            reason = Reason.FORBIDDEN_XML if exc.forbidden else Reason.MALFORMED_XML
            srv.reject(peer, reason, exc.detail, request.from_address.user or None, raw)
            return srv.answer(request, 400, "Bad Request")
        sender = request.from_address.user
        found = srv.device(sender)
        if found is None:
            return await self._unknown(request, body, sender, peer, raw)
        site, device = found
        command = body.cmd_type.lower()  # devices in the field write "KeepAlive" too
        if command == "keepalive":
            return await self._keepalive(request, sender, peer)
        if command == "alarm" and body.root == "Notify":
            return await self._alarm(request, body, site, device, peer, raw)
        if command == "catalog" and body.root == "Response":
            self._catalog(sender, body)
        else:
            log.debug("GB28181 %s %s from %s: not used", body.root, body.cmd_type, sender)
        return srv.answer(request, 200, "OK")

    async def _unknown(
        self,
        request: sip.SipMessage,
        body: manscdp.Manscdp,
        sender: str,
        peer: sip.Peer,
        raw: bytes,
    ) -> bytes:
        srv = self.server
        detail = f"{body.cmd_type} from {sender!r}, not a registered GB/T 28181 device"
        fields = body.fields
        looks_like_panic = body.cmd_type.lower() == "alarm" and (
            fields.get("AlarmMethod") == "1" or fields.get("AlarmPriority") == "1"
        )
        if looks_like_panic:
            raised = await srv.sink.unregistered_panic(
                source=f"{SOURCE}/{peer}", device_id=sender or "?", detail=detail, raw=raw
            )
            if raised:
                return srv.answer(request, 200, "OK")
        else:
            srv.reject(peer, Reason.UNKNOWN_DEVICE, detail, sender or None, raw)
        return srv.answer(request, 403, "Forbidden")

    async def _keepalive(self, request: sip.SipMessage, sender: str, peer: sip.Peer) -> bytes:
        srv = self.server
        session = srv.sessions.get(sender)
        if session is None:
            log.info("GB28181 keepalive from %s (%s), which is not registered: 403", sender, peer)
            return srv.answer(request, 403, "Forbidden")
        events = srv.sessions.keepalive(session, peer)
        if not await srv.sink.store(events, timeout_s=srv.config.ack_timeout_s):
            return srv.answer(request, 500, "Server Internal Error")
        return srv.answer(request, 200, "OK")

    async def _alarm(
        self,
        request: sip.SipMessage,
        body: manscdp.Manscdp,
        site: SiteConfig,
        device: DeviceConfig,
        peer: sip.Peer,
        raw: bytes,
    ) -> bytes:
        srv = self.server
        fields = body.fields
        target = self._alarm_device(body.device_id, site, device)
        try:
            type_, label = classify(fields.get("AlarmMethod"), fields.get("AlarmType"), target.kind)
        except UnknownAlarm as exc:
            srv.reject(peer, Reason.UNKNOWN_CODE, str(exc), device.id, raw)
            return srv.answer(request, 400, "Bad Request")
        session = srv.sessions.get(device.id)
        extra: dict[str, str | int | float | bool | None] = {
            "alarm_method": fields.get("AlarmMethod", ""),
            "label": label,
            "transport": peer.transport,
            "authenticated": session is not None and session.peer.host == peer.host,
        }
        for name, key in (
            ("alarm_type", "AlarmType"),
            ("priority", "AlarmPriority"),
            ("description", "AlarmDescription"),
            ("sn", "SN"),
        ):
            if fields.get(key):
                extra[name] = fields[key][:64]
        if body.device_id and body.device_id != target.id:
            extra["channel"] = body.device_id[:32]
        now = srv.clock()
        key = f"{request.call_id}|{request.cseq}|{body.sn}|{body.device_id}"
        attrs: dict[str, object] = {"extra": extra}
        if target.kind is DeviceKind.ALARM:
            attrs["household"] = target.household
        event = Event(
            event_id=f"{SOURCE}:{target.id}:{hashlib.sha256(key.encode()).hexdigest()[:20]}",
            occurred_at=self._alarm_time(fields.get("AlarmTime"), now),
            received_at=now,
            site=site.id,
            device_id=target.id,
            kind=target.kind,
            type=type_,
            attributes=ATTRIBUTE_MODELS[target.kind].model_validate(attrs),
            source=SOURCE,
            raw=manscdp.decode(request.body)[:2048],
        )
        if not await srv.sink.store([event], timeout_s=srv.config.ack_timeout_s):
            return srv.answer(request, 500, "Server Internal Error")
        log.info("GB28181 alarm from %s: %s (%s)", target.id, type_.value, label)
        reply_to = body.device_id or device.id
        srv.transport.spawn(self._respond_later(peer, device.id, body.sn, reply_to))
        return srv.answer(request, 200, "OK")

    def _alarm_device(self, alarm_id: str, site: SiteConfig, sender: DeviceConfig) -> DeviceConfig:
        """The device an alarm belongs to: its channel when that is registered in the same
        site, else the device that sent it (an NVR's channel is kept in ``extra.channel``)."""
        found = self.server.device(alarm_id) if alarm_id else None
        if found is not None and found[0].id == site.id:
            return found[1]
        return sender

    def _alarm_time(self, text: str | None, now: datetime) -> datetime:
        """``AlarmTime`` is local time without a zone (ISO 8601); ours when absent or odd."""
        if not text:
            return now
        try:
            at = datetime.fromisoformat(text.strip())
        except ValueError:
            return now
        if at.tzinfo is None:
            at = at.replace(tzinfo=self.server.tz)
        at = at.astimezone(UTC)
        return at if abs((at - now).total_seconds()) < 86400 else now

    async def _respond_later(self, peer: sip.Peer, device_id: str, sn: str, alarm_id: str) -> None:
        srv = self.server
        session = srv.sessions.get(device_id)
        cseq = session.next_cseq() if session is not None else 1
        srv.send_request(peer, device_id, manscdp.alarm_response(sn, alarm_id), cseq=cseq)

    def _catalog(self, sender: str, body: manscdp.Manscdp) -> None:
        session = self.server.sessions.get(sender)
        if session is None:
            return
        for item in body.items:
            session.channels[item.device_id] = item
        log.info(
            "GB28181 catalog of %s: %d channel(s) known (of %s)",
            sender,
            len(session.channels),
            body.sum_num,
        )
