"""One DC-09 frame in, one answer out (or silence), with the events stored in between.

The order of checks follows DC-09-2013: CRC and length (NAK), the message id and account
(DUH when we cannot process it), the key (DUH), the timestamp window (NAK with our time),
then the content. A retransmission (same account, sequence and content within
``duplicate_window_s``) is acknowledged again without storing anything twice. The ACK goes out
only once the events are committed — and a panic's incident stored (``ReceiverSink.store``);
if that takes longer than ``ack_timeout_s`` the receiver stays silent and the panel repeats.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gateway.config.sites import DeviceConfig, SiteConfig, SiteRegistry
from gateway.events import ATTRIBUTE_MODELS, DeviceKind, Event, EventType, utcnow
from gateway.ingest.reasons import Reason
from gateway.receivers.sia import frame as f
from gateway.receivers.sia.codes import PanelEvent, UnknownCode, contact_id, sia_dcs
from gateway.receivers.sia.config import SiaReceiverConfig
from gateway.receivers.sia.supervision import Supervision
from gateway.receivers.sink import ReceiverSink

log = logging.getLogger(__name__)

SOURCE = "sia-dc09"
RECENT_LIMIT = 50_000  # messages remembered for duplicate recognition


@dataclass
class _Seen:
    at: datetime
    stored: asyncio.Future[bool]


@dataclass
class SiaStats:
    frames: int = 0
    acked: int = 0
    naked: int = 0
    duh: int = 0
    silent: int = 0
    duplicates: int = 0
    events: int = 0
    rejected: dict[str, int] = field(default_factory=dict)


class _Refused(Exception):
    """Stop here with this answer (already quarantined)."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer


class SiaReceiver:
    """Protocol logic, independent of the transport (``server.py`` feeds it frames)."""

    def __init__(
        self,
        config: SiaReceiverConfig,
        registry: SiteRegistry,
        sink: ReceiverSink,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.config = config
        self.registry = registry
        self.sink = sink
        self.clock = clock
        self.stats = SiaStats()
        self._recent: OrderedDict[tuple[str, ...], _Seen] = OrderedDict()
        self.supervision = Supervision(config, registry, sink, clock=clock)

    def panel(self, account: str) -> tuple[SiteConfig, DeviceConfig] | None:
        """The registered device reporting under ``account`` (the registry may change at
        run time, so it is looked up each time; a few thousand devices take microseconds)."""
        for site in self.registry.sites.values():
            for device in site.devices:
                if device.sia is not None and device.sia.account == account:
                    return site, device
        return None

    async def handle(self, raw: bytes, *, transport: str, peer: str) -> bytes | None:
        """The answer to one frame, or None for silence (not stored in time)."""
        self.stats.frames += 1
        now = self.clock()
        source = f"{SOURCE}/{transport}/{peer.rpartition(':')[0] or peer}"  # host, not port
        answer: bytes | None
        try:
            answer = await self._handle(raw, now, source, transport)
        except _Refused as refused:
            answer = refused.answer
        except Exception as exc:  # a bug must not stop the listener: NAK, keep the frame
            log.exception("SIA frame from %s could not be handled", peer)
            self._reject(source, Reason.ADAPTER_ERROR, repr(exc)[:300], None, raw)
            answer = f.nak(now)
        self._count(answer)
        return answer

    async def _handle(self, raw: bytes, now: datetime, source: str, transport: str) -> bytes:
        try:
            header = f.parse_header(f.split_frame(raw))
        except f.FrameError as exc:
            self._reject(source, exc.reason, exc.detail, None, raw)
            return f.nak(now)
        account = header.account
        source = f"{source}/{account}"
        if header.message_id not in f.MESSAGE_IDS:
            self._reject(
                source,
                Reason.UNKNOWN_CODE,
                f"unsupported message id {header.message_id!r}",
                account,
                raw,
            )
            return f.duh(header)
        found = self.panel(account)
        if found is None:
            return await self._unknown_account(header, raw, now, source)
        site, device = found
        assert device.sia is not None
        key = self._key(device, header, raw, source)
        message = self._read(header, key, raw, source)
        self._check_time(message, key, raw, source, now)
        dedupe = (account, header.sequence, header.message_id, message.data, *message.extended)
        seen = self._recent.get(dedupe)
        if seen is not None and now - seen.at <= timedelta(seconds=self.config.duplicate_window_s):
            return await self._repeat(header, seen, key, raw, source, now)
        try:
            panel_events = self._panel_events(header, message)
        except UnknownCode as exc:
            self._reject(source, Reason.UNKNOWN_CODE, str(exc), device.id, raw)
            return f.duh(header)
        events = self._events(site, device, header, message, panel_events, transport, now)
        events = self.supervision.heard(device, now) + events
        stored: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._remember(dedupe, _Seen(now, stored))
        ok = await self.sink.store(events, timeout_s=self.config.ack_timeout_s)
        stored.set_result(ok)
        if not ok:
            self._recent.pop(dedupe, None)  # the repeat is processed afresh (same events)
            raise _Refused(None)
        self.stats.events += len(events)
        return f.ack(header, key, self.clock())

    # -- steps -------------------------------------------------------------------------------
    async def _unknown_account(
        self, header: f.Header, raw: bytes, now: datetime, source: str
    ) -> bytes:
        account = header.account
        detail = f"account {account} is not registered"
        if not header.encrypted:
            try:
                message = f.parse_message(header)
                codes = self._panel_events(header, message)
            except (f.FrameError, UnknownCode):
                codes = []
            panics = [c for c in codes if c.type is EventType.PANIC]
            if panics:
                what = ", ".join(f"{c.code} ({c.label}) zone {c.zone or '-'}" for c in panics)
                raised = await self.sink.unregistered_panic(
                    source=source, device_id=f"sia:{account}", detail=f"{detail}: {what}", raw=raw
                )
                return f.ack(header, None, self.clock()) if raised else f.duh(header)
        self._reject(source, Reason.UNKNOWN_DEVICE, detail, f"sia:{account}", raw)
        return f.duh(header)

    def _key(self, device: DeviceConfig, header: f.Header, raw: bytes, source: str) -> bytes | None:
        assert device.sia is not None
        env = device.sia.key_env
        if env is None:
            if header.encrypted:
                self._reject(
                    source,
                    Reason.DECRYPT_FAILED,
                    "encrypted message, but the account has no key_env",
                    device.id,
                    raw,
                )
                raise _Refused(f.duh(header))
            return None
        key = f.parse_key(os.environ.get(env, ""))
        if key is None:
            log.error("SIA account %s: %s holds no AES key", header.account, env)
            self._reject(source, Reason.DECRYPT_FAILED, f"no usable key in {env}", device.id, raw)
            raise _Refused(f.duh(header))
        if not header.encrypted:
            self._reject(
                source,
                Reason.AUTH_FAILED,
                "the account is encrypted; a plaintext message is refused",
                device.id,
                raw,
            )
            raise _Refused(f.duh(header))
        return key

    def _read(self, header: f.Header, key: bytes | None, raw: bytes, source: str) -> f.Message:
        try:
            plain = f.decrypt(header, key) if key is not None else None
            return f.parse_message(header, plain)
        except f.FrameError as exc:
            self._reject(source, exc.reason, exc.detail, f"sia:{header.account}", raw)
            if exc.reason is Reason.STALE_TIMESTAMP:
                raise _Refused(f.nak(self.clock())) from None
            raise _Refused(f.duh(header)) from None

    def _check_time(
        self, message: f.Message, key: bytes | None, raw: bytes, source: str, now: datetime
    ) -> None:
        stamp = message.timestamp
        device_id = f"sia:{message.header.account}"
        if stamp is None:
            if self.config.require_timestamp:
                self._reject(source, Reason.STALE_TIMESTAMP, "no timestamp", device_id, raw)
                raise _Refused(f.nak(now))
            return
        ahead = (stamp - now).total_seconds()
        if ahead > self.config.timestamp_ahead_s or -ahead > self.config.timestamp_behind_s:
            self._reject(
                source,
                Reason.STALE_TIMESTAMP,
                f"timestamp {stamp.isoformat()} is {ahead:+.0f} s from ours",
                device_id,
                raw,
            )
            raise _Refused(f.nak(now))

    async def _repeat(
        self,
        header: f.Header,
        seen: _Seen,
        key: bytes | None,
        raw: bytes,
        source: str,
        now: datetime,
    ) -> bytes:
        """A retransmission: answer as the first time once that one is stored."""
        self.stats.duplicates += 1
        stored = await asyncio.shield(seen.stored)
        if not stored:
            raise _Refused(None)
        self.sink.quarantine(
            source=source,
            reason=Reason.DUPLICATE,
            detail=f"retransmission of sequence {header.sequence} (stored at "
            f"{seen.at.isoformat()}); acknowledged again, not stored twice",
            device_id=f"sia:{header.account}",
            raw=raw,
        )
        return f.ack(header, key, self.clock())

    @staticmethod
    def _panel_events(header: f.Header, message: f.Message) -> list[PanelEvent]:
        if header.message_id == "NULL":
            return [PanelEvent(EventType.HEARTBEAT, "NULL", "link test (NULL)")]
        if header.message_id == "ADM-CID":
            return contact_id(message.data)
        return sia_dcs(message.data)

    def _events(
        self,
        site: SiteConfig,
        device: DeviceConfig,
        header: f.Header,
        message: f.Message,
        panel_events: list[PanelEvent],
        transport: str,
        now: datetime,
    ) -> list[Event]:
        assert device.sia is not None
        # Retransmissions are recognised before this (same content within the window), so the
        # id may include our receive time: a sequence number seen again after the panel
        # wrapped or restarted is a new message, never a silent duplicate.
        digest = hashlib.sha256(
            f"{header.account}|{header.sequence}|{message.data}|{now.isoformat()}".encode()
        ).hexdigest()[:16]
        model = ATTRIBUTE_MODELS[device.kind]
        out: list[Event] = []
        for i, pe in enumerate(panel_events):
            household = device.sia.household_of(pe.zone, pe.user) or device.household
            extra: dict[str, str | int | float | bool | None] = {
                "code": pe.code,
                "label": pe.label,
                "account": header.account,
                "sequence": header.sequence,
                "protocol": header.message_id,
                "transport": transport,
            }
            for name, value in (("user", pe.user), ("partition", pe.partition), ("text", pe.text)):
                if value:
                    extra[name] = value
            attrs: dict[str, object] = {"zone": pe.zone, "extra": extra}
            if device.kind is DeviceKind.ALARM:
                attrs["household"] = household
            elif household:
                extra["household"] = household
            out.append(
                Event(
                    event_id=f"sia:{header.account}:{header.sequence}:{digest}:{i}",
                    occurred_at=message.timestamp or now,
                    received_at=now,
                    site=site.id,
                    device_id=device.id,
                    kind=device.kind,
                    type=pe.type,
                    attributes=model.model_validate(attrs),
                    source=SOURCE,
                    raw=(header.message_id + " " + message.data)[:512],
                )
            )
        return out

    # -- bookkeeping -------------------------------------------------------------------------
    def _remember(self, key: tuple[str, ...], seen: _Seen) -> None:
        self._recent[key] = seen
        self._recent.move_to_end(key)
        while len(self._recent) > RECENT_LIMIT:
            self._recent.popitem(last=False)

    def _reject(
        self, source: str, reason: Reason, detail: str, device_id: str | None, raw: bytes
    ) -> None:
        self.stats.rejected[reason.value] = self.stats.rejected.get(reason.value, 0) + 1
        self.sink.quarantine(
            source=source, reason=reason, detail=detail, device_id=device_id, raw=raw
        )

    def _count(self, answer: bytes | None) -> None:
        if answer is None:
            self.stats.silent += 1
        elif b'ACK"' in answer[:20]:
            self.stats.acked += 1
        elif b'"NAK"' in answer[:20]:
            self.stats.naked += 1
        else:
            self.stats.duh += 1
