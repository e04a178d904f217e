"""Simulated GB/T 28181 cameras registering with a SIP server (the demo's, or any), over UDP.

Each device of the site with a ``gb28181:`` block registers with digest authentication,
sends a Keepalive every minute (scaled by ``rate``), now and then a motion or intrusion alarm,
and answers the server's requests: a Catalog query with one channel, an alarm response with
200. ``SimulatedCamera`` is also what the tests drive.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import random
import re
import secrets
from datetime import datetime
from typing import cast
from zoneinfo import ZoneInfo

from gateway.config.sites import DeviceConfig, SiteConfig
from gateway.receivers.gb28181 import manscdp, sip
from gateway.receivers.gb28181.digest import authorization

log = logging.getLogger(__name__)
CHINA = ZoneInfo("Asia/Shanghai")


class SimulatedCamera(asyncio.DatagramProtocol):
    def __init__(
        self, device_id: str, *, server_id: str, domain: str, password: str, host: str, port: int
    ) -> None:
        self.device_id, self.server_id, self.domain = device_id, server_id, domain
        self.password = password
        self.server = (host, port)
        self.transport: asyncio.DatagramTransport | None = None
        self.call_id = secrets.token_hex(8)
        self.tag = secrets.token_hex(4)
        self.cseq = itertools.count(1)
        self.sn = itertools.count(1)
        self._waiting: dict[tuple[str, str], asyncio.Future[sip.SipMessage]] = {}
        self.received: list[sip.SipMessage] = []  # requests the server sent us

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, remote_addr=self.server)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (CPython's UDP transport is not a subclass of asyncio.DatagramTransport)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: object) -> None:
        try:
            message = sip.parse(data, 65536)
        except sip.SipError:
            return
        if not message.is_request:
            key = (message.call_id, message.require("CSeq"))
            waiter = self._waiting.pop(key, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(message)
            return
        self.received.append(message)
        assert self.transport is not None
        self.transport.sendto(bytes(sip.response(message, 200, "OK")))
        with contextlib.suppress(manscdp.XmlRefused):
            body = manscdp.parse(message.body)
            if body.root == "Query" and body.cmd_type == "Catalog":
                self.transport.sendto(self._request("MESSAGE", self._catalog(body.sn)))

    def _catalog(self, sn: str) -> bytes:
        channel = self.device_id  # a camera: one channel, itself
        text = (
            f'<?xml version="1.0" encoding="GB2312"?>\r\n<Response>\r\n<CmdType>Catalog</CmdType>'
            f"\r\n<SN>{sn}</SN>\r\n<DeviceID>{self.device_id}</DeviceID>\r\n<SumNum>1</SumNum>\r\n"
            f'<DeviceList Num="1">\r\n<Item>\r\n<DeviceID>{channel}</DeviceID>\r\n'
            "<Name>模拟摄像机</Name>\r\n<Manufacturer>Lianfang</Manufacturer>\r\n"
            "<Model>SIM-1</Model>\r\n<Status>ON</Status>\r\n</Item>\r\n</DeviceList>\r\n</Response>\r\n"
        )
        return text.encode("gb18030")

    def _request(
        self, method: str, body: bytes = b"", extra: list[tuple[str, str]] | None = None
    ) -> bytes:
        assert self.transport is not None
        host, port = self.transport.get_extra_info("sockname")[:2]
        headers = [
            ("Via", f"SIP/2.0/UDP {host}:{port};rport;branch=z9hG4bK{secrets.token_hex(6)}"),
            ("From", f"<sip:{self.device_id}@{self.domain}>;tag={self.tag}"),
            ("To", f"<sip:{self.device_id}@{self.domain}>"),
            ("Call-ID", self.call_id if method == "REGISTER" else secrets.token_hex(8)),
            ("CSeq", f"{next(self.cseq)} {method}"),
            ("Max-Forwards", "70"),
            ("Contact", f"<sip:{self.device_id}@{host}:{port}>"),
            *(extra or []),
        ]
        if body:
            headers.append(("Content-Type", sip.MANSCDP))
        uri = f"sip:{self.server_id}@{self.domain}"
        return bytes(sip.SipMessage(method, uri, 0, headers, body))

    async def send(self, data: bytes, timeout_s: float = 5.0) -> sip.SipMessage:
        """Send a request; its final answer (retransmitted over UDP as a device does)."""
        assert self.transport is not None
        request = sip.parse(data, 65536)
        key = (request.call_id, request.require("CSeq"))
        waiter: asyncio.Future[sip.SipMessage] = asyncio.get_running_loop().create_future()
        self._waiting[key] = waiter
        delay, deadline = 0.5, asyncio.get_running_loop().time() + timeout_s
        try:
            while True:
                self.transport.sendto(data)
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    raise TimeoutError(f"no answer to {request.method}")
                with contextlib.suppress(TimeoutError):
                    return await asyncio.wait_for(asyncio.shield(waiter), min(delay, left))
                delay = min(delay * 2, 4.0)
        finally:
            self._waiting.pop(key, None)

    async def register(self, *, expires: int = 3600, password: str | None = None) -> int:
        """REGISTER, answering the 401 challenge; the final status code."""
        extra = [("Expires", str(expires))]
        first = await self.send(self._request("REGISTER", extra=extra))
        if first.status != 401:
            return first.status
        challenge = first.get("WWW-Authenticate") or ""
        nonce = re.search(r'nonce="([^"]+)"', challenge)
        realm = re.search(r'realm="([^"]+)"', challenge)
        if nonce is None or realm is None:
            return first.status
        auth = authorization(
            username=self.device_id, realm=realm.group(1), nonce=nonce.group(1),
            method="REGISTER", uri=f"sip:{self.server_id}@{self.domain}",
            password=self.password if password is None else password,
        )  # fmt: skip
        answer = await self.send(self._request("REGISTER", extra=[*extra, ("Authorization", auth)]))
        return answer.status

    async def keepalive(self) -> int:
        body = manscdp.notify("Keepalive", next(self.sn), self.device_id, Status="OK")
        return (await self.send(self._request("MESSAGE", body))).status

    async def alarm(self, *, method: int = 5, alarm_type: int | None = 6, priority: int = 1) -> int:
        now = datetime.now(CHINA).strftime("%Y-%m-%dT%H:%M:%S")
        body = manscdp.alarm_notify(
            next(self.sn), self.device_id, priority=priority, method=method,
            alarm_type=alarm_type, time=now, description="模拟报警",
        )  # fmt: skip
        return (await self.send(self._request("MESSAGE", body))).status


async def run_cameras(
    site: SiteConfig,
    host: str,
    port: int,
    *,
    server_id: str,
    domain: str,
    rate: float,
    seed: int,
    stop: asyncio.Event,
    default_password_env: str | None = None,
) -> None:
    devices = [d for d in site.devices if d.gb28181 is not None]
    await asyncio.gather(
        *(_run_one(d, host, port, server_id, domain, rate, seed, stop, default_password_env)
          for d in devices)
    )  # fmt: skip


async def _run_one(
    device: DeviceConfig, host: str, port: int, server_id: str, domain: str, rate: float,
    seed: int, stop: asyncio.Event, default_env: str | None,
) -> None:  # fmt: skip
    assert device.gb28181 is not None
    env = device.gb28181.password_env or default_env
    password = os.environ.get(env or "", "")
    rng = random.Random(f"{seed}:{device.id}")
    camera = SimulatedCamera(device.id, server_id=server_id, domain=domain, password=password,
                             host=host, port=port)  # fmt: skip
    await camera.open()
    interval = 60 / max(rate, 0.01)
    registered = False
    try:
        while not stop.is_set():
            try:
                if not registered:
                    registered = await camera.register() == 200
                elif await camera.keepalive() != 200:
                    registered = False
                if registered and rng.random() < 0.05:
                    await camera.alarm(method=5, alarm_type=rng.choice([2, 6]), priority=3)
            except TimeoutError:
                registered = False
            with contextlib.suppress(TimeoutError):  # not registered: try again soon
                await asyncio.wait_for(stop.wait(), interval if registered else min(interval, 3))
    finally:
        camera.close()
