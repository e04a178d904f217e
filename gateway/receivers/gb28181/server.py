"""The GB/T 28181-2016 SIP server (the 平台 side of 9.1 registration, 9.4 alarms, 9.5
catalog, 9.6 keepalive).

- REGISTER: digest authentication (401 with a challenge first; a wrong password 403; an
  unknown device 403), ``Expires`` clamped to the configured range (423 below the minimum),
  ``Expires: 0`` unregisters; the 200 carries ``Date`` for the device's clock. A Catalog query
  follows a new registration.
- MESSAGE / NOTIFY with MANSCDP: Keepalive (200; heartbeat, online), Alarm (200 once stored —
  a panic once its incident is — then the 报警通知应答 Response), Catalog responses (channels).
- Answers go to where the request came from. UDP retransmissions of a request being handled
  are absorbed, and of one answered get the same answer again (RFC 3261 §17.2.2).
- Anything unreadable is answered 4xx when it can be, quarantined with the reason, and the
  server carries on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from gateway.config.sites import DeviceConfig, SiteConfig, SiteRegistry
from gateway.events import utcnow
from gateway.ingest.reasons import Reason
from gateway.receivers.gb28181 import manscdp, sip
from gateway.receivers.gb28181.config import Gb28181ServerConfig
from gateway.receivers.gb28181.digest import DigestAuth
from gateway.receivers.gb28181.messages import MessageHandler
from gateway.receivers.gb28181.sessions import SOURCE, Sessions
from gateway.receivers.gb28181.transport import SipTransport
from gateway.receivers.sink import ReceiverSink

log = logging.getLogger(__name__)

TRANSACTION_TTL_S = 32.0  # Timer J: 64 × T1
TRANSACTIONS = 10_000


class Gb28181Server:
    def __init__(
        self,
        config: Gb28181ServerConfig,
        registry: SiteRegistry,
        sink: ReceiverSink,
        *,
        timezone: str = "Asia/Shanghai",
        clock: Callable[[], datetime] = utcnow,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.registry = registry
        self.sink = sink
        self.tz = ZoneInfo(timezone)
        self.clock = clock
        self.monotonic = monotonic
        self.auth = DigestAuth(config.domain, ttl_s=config.nonce_ttl_s)
        self.sessions = Sessions(
            registry,
            keepalive_timeout_s=config.keepalive_timeout_s,
            clock=clock,
            monotonic=monotonic,
        )
        self.transport = SipTransport(
            config.host,
            config.port,
            udp=config.udp,
            tcp=config.tcp,
            limit=config.max_message_bytes,
            handler=self.handle,
        )
        self.messages = MessageHandler(self)
        # (Call-ID, CSeq, branch) → the final answer, or None while it is being handled
        self._transactions: OrderedDict[tuple[str, str, str], tuple[float, bytes | None]] = (
            OrderedDict()
        )
        self._watch: asyncio.Task[None] | None = None
        self.rejected: dict[str, int] = {}

    async def start(self) -> None:
        await self.transport.start()
        self._watch = asyncio.create_task(self._watch_sessions())
        log.info(
            "GB/T 28181 SIP server %s@%s on %s (udp %s, tcp %s)",
            self.config.server_id,
            self.config.domain,
            self.config.host,
            self.transport.udp_port,
            self.transport.tcp_port,
        )

    async def stop(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        await self.transport.stop()

    def device(self, device_id: str) -> tuple[SiteConfig, DeviceConfig] | None:
        """A registered GB/T 28181 device of the site registry."""
        found = self.registry.device(device_id)
        if found is None or found[1].gb28181 is None:
            return None
        return found

    # -- entry point ------------------------------------------------------------------------
    async def handle(self, data: bytes, peer: sip.Peer) -> None:
        """One message from ``peer`` (never raises: the listener goes on)."""
        try:
            message = sip.parse(data, self.config.max_message_bytes)
        except sip.SipError as exc:
            reason = Reason.OVERSIZE if exc.status == 413 else Reason.MALFORMED_FRAME
            self.reject(peer, reason, exc.detail, None, data)
            if exc.request is not None:  # headers readable: tell the device why
                self.transport.send(
                    peer, self.answer(exc.request, exc.status, _PHRASES.get(exc.status, "Error"))
                )
            return
        if not message.is_request:
            return  # answers to our Catalog queries and alarm responses: nothing to do
        key = self._transaction_key(message)
        seen = self._transactions.get(key)
        if seen is not None:
            if seen[1] is not None:
                self.transport.send(peer, seen[1])  # a retransmission: the same answer
            return
        self._transactions[key] = (self.monotonic(), None)
        try:
            answer = await self._dispatch(message, peer, data)
        except sip.SipError as exc:
            answer = self.answer(message, exc.status, _PHRASES.get(exc.status, "Error"))
        except Exception as exc:  # a bug must not stop the server
            log.exception("GB28181 %s from %s failed", message.method, peer)
            self.reject(peer, Reason.ADAPTER_ERROR, repr(exc)[:300], None, data)
            answer = self.answer(message, 500, "Server Internal Error")
        self._remember(key, answer)
        if answer:
            self.transport.send(peer, answer)

    async def _dispatch(self, request: sip.SipMessage, peer: sip.Peer, raw: bytes) -> bytes:
        method = request.method
        if method == "REGISTER":
            return await self._register(request, peer, raw)
        if method in ("MESSAGE", "NOTIFY"):
            return await self.messages.handle(request, peer, raw)
        if method in ("OPTIONS", "BYE"):
            return self.answer(request, 200, "OK")
        if method == "ACK":
            return b""
        resp = sip.response(request, 405, "Method Not Allowed")
        resp.headers.append(("Allow", sip.ALLOW))
        return bytes(resp)

    # -- REGISTER ---------------------------------------------------------------------------
    async def _register(self, request: sip.SipMessage, peer: sip.Peer, raw: bytes) -> bytes:
        device_id = request.from_address.user
        found = self.device(device_id)
        if found is None:
            self.reject(
                peer,
                Reason.UNKNOWN_DEVICE,
                f"REGISTER from {device_id!r}, not a registered GB/T 28181 device",
                device_id or None,
                raw,
            )
            return self.answer(request, 403, "Forbidden")
        password = self._password(found[1])
        if password is None:
            self.reject(
                peer, Reason.AUTH_FAILED, "no password configured for the device", device_id, raw
            )
            return self.answer(request, 403, "Forbidden")
        header = request.get("Authorization")
        creds = sip.digest_params(header) if header is not None else None
        if creds is None:
            return self._challenge(request, stale=False)
        verdict = self.auth.check(creds, method="REGISTER", username=device_id, password=password)
        if verdict == "stale":
            return self._challenge(request, stale=True)
        if verdict == "bad":
            self.reject(
                peer, Reason.AUTH_FAILED, "wrong digest response (password)", device_id, raw
            )
            return self.answer(request, 403, "Forbidden")
        expires = self._expires(request)
        if expires == 0:
            events = self.sessions.unregister(device_id, "unregistered")
            await self.sink.store(events, timeout_s=self.config.ack_timeout_s)
            return self._registered(request, 0)
        if expires < self.config.expires_min_s:
            resp = sip.response(request, 423, "Interval Too Brief")
            resp.headers.append(("Min-Expires", str(self.config.expires_min_s)))
            return bytes(resp)
        expires = min(expires, self.config.expires_max_s)
        fresh = self.sessions.get(device_id) is None
        events = self.sessions.register(device_id, peer, expires)
        await self.sink.store(events, timeout_s=self.config.ack_timeout_s)
        log.info("GB28181 device %s registered from %s for %d s", device_id, peer, expires)
        if fresh and self.config.catalog_on_register:
            asyncio.get_running_loop().call_later(0.05, self.query_catalog, device_id)
        return self._registered(request, expires)

    def _password(self, device: DeviceConfig) -> str | None:
        assert device.gb28181 is not None
        env = device.gb28181.password_env or self.config.password_env
        value = os.environ.get(env) if env else None
        return value or None

    def _challenge(self, request: sip.SipMessage, *, stale: bool) -> bytes:
        resp = sip.response(request, 401, "Unauthorized")
        resp.headers.append(("WWW-Authenticate", self.auth.challenge(stale=stale)))
        return bytes(resp)

    def _expires(self, request: sip.SipMessage) -> int:
        value: str | None = None
        for contact in request.contacts:
            if "expires" in contact.params:
                value = contact.params["expires"]
                break
        else:
            value = request.get("Expires")
        if value is None:
            return 3600
        if not value.strip().isdigit() or len(value.strip()) > 9:
            raise sip.SipError(400, "Expires is not a number")
        return int(value)

    def _registered(self, request: sip.SipMessage, expires: int) -> bytes:
        resp = sip.response(request, 200, "OK")
        resp.headers.append(("Date", sip.gb_date(self.clock().astimezone(self.tz))))
        resp.headers.append(("Expires", str(expires)))
        for contact in request.get_all("Contact"):
            resp.headers.append(("Contact", contact))
        return bytes(resp)

    # -- requests to devices ----------------------------------------------------------------
    def query_catalog(self, device_id: str) -> bool:
        """Ask a registered device for its channels (the answer arrives as MESSAGEs)."""
        session = self.sessions.get(device_id)
        if session is None:
            return False
        sn = session.next_cseq()
        return self.send_request(
            session.peer, device_id, manscdp.catalog_query(sn, device_id), cseq=sn
        )

    def send_request(self, peer: sip.Peer, device_id: str, body: bytes, *, cseq: int) -> bool:
        host, port = self.transport.local_address(peer)
        request = sip.new_request(
            "MESSAGE",
            target_id=device_id,
            peer=peer,
            server_id=self.config.server_id,
            domain=self.config.domain,
            local_host=host,
            local_port=port,
            cseq=cseq,
            body=body,
        )
        return self.transport.send(peer, bytes(request))

    # -- helpers ----------------------------------------------------------------------------
    def answer(self, request: sip.SipMessage, code: int, phrase: str) -> bytes:
        return bytes(sip.response(request, code, phrase))

    def reject(
        self, peer: sip.Peer, reason: Reason, detail: str, device_id: str | None, raw: bytes
    ) -> None:
        self.rejected[reason.value] = self.rejected.get(reason.value, 0) + 1
        self.sink.quarantine(
            source=f"{SOURCE}/{peer.transport}:{peer.host}",
            reason=reason,
            detail=detail,
            device_id=device_id,
            raw=raw,
        )

    @staticmethod
    def _transaction_key(request: sip.SipMessage) -> tuple[str, str, str]:
        number, method = request.cseq
        return request.call_id, f"{number} {method}", request.branch

    def _remember(self, key: tuple[str, str, str], answer: bytes) -> None:
        now = self.monotonic()
        self._transactions[key] = (now, answer)
        self._transactions.move_to_end(key)
        while self._transactions:
            oldest_key, (at, _) = next(iter(self._transactions.items()))
            if len(self._transactions) <= TRANSACTIONS and now - at < TRANSACTION_TTL_S:
                break
            del self._transactions[oldest_key]

    async def _watch_sessions(self, tick_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(tick_s)
            events = self.sessions.due()
            if events:
                await self.sink.store(events, timeout_s=self.config.ack_timeout_s)


_PHRASES = {
    400: "Bad Request",
    403: "Forbidden",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    500: "Server Internal Error",
}
