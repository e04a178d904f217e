"""Simulated alarm panels speaking SIA DC-09 to a receiver (the demo's, or any).

Each device of the site with a ``sia:`` block connects over TCP and sends a NULL link test
every ``null_interval_s`` (60 s by default), now and then an opening/closing (Contact ID 401)
and a periodic test (602), and waits for each ACK as a panel does (repeating the same frame on
silence). ``send_frame`` is the one-shot form the tests and ``lianfang simulate --sia-event``
use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.config.sites import DeviceConfig, SiteConfig
from gateway.receivers.sia import frame as f

log = logging.getLogger(__name__)

ANSWER_TIMEOUT_S = 10.0


@dataclass
class PanelStats:
    sent: int = 0
    acked: int = 0
    refused: int = 0  # NAK or DUH


def _key(device: DeviceConfig) -> bytes | None:
    assert device.sia is not None
    env = device.sia.key_env
    return f.parse_key(os.environ.get(env, "")) if env else None


async def send_frame(
    host: str, port: int, frame: bytes, *, transport: str = "tcp", timeout_s: float = 5.0
) -> bytes | None:
    """Send one frame; the receiver's answer, or None when it stayed silent."""
    if transport == "udp":
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bytes] = loop.create_future()

        class _Client(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: object) -> None:
                if not answer.done():
                    answer.set_result(data)

        udp, _ = await loop.create_datagram_endpoint(_Client, remote_addr=(host, port))
        try:
            udp.sendto(frame)
            return await asyncio.wait_for(answer, timeout_s)
        except TimeoutError:
            return None
        finally:
            udp.close()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(frame)
        await writer.drain()
        return await asyncio.wait_for(reader.readuntil(b"\r"), timeout_s)
    except (TimeoutError, asyncio.IncompleteReadError):
        return None
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


class SimulatedPanel:
    def __init__(self, device: DeviceConfig, host: str, port: int, *, rate: float, seed: int):
        assert device.sia is not None
        self.device = device
        self.account = device.sia.account
        self.host, self.port = host, port
        self.speed = max(rate, 0.01)
        self.rng = random.Random(f"{seed}:{device.id}")
        self.key = _key(device)
        # from the clock, like the MQTT simulator's seq: a second run (or the demo's own panel
        # next to `lianfang simulate`) does not repeat the first one's sequence numbers
        self.sequence = (int(time.time()) + self.rng.randint(0, 999)) % 9999
        self.stats = PanelStats()

    def frame(self, message_id: str, data: str) -> bytes:
        self.sequence = self.sequence % 9999 + 1
        now = datetime.now(UTC)
        return f.build_frame(message_id, self.sequence, self.account, data, key=self.key, at=now)

    async def run(self, stop: asyncio.Event) -> None:
        assert self.device.sia is not None
        interval = (self.device.sia.null_interval_s or 60) / 2 / self.speed
        while not stop.is_set():
            roll = self.rng.random()
            if roll < 0.1:
                user = f"{self.rng.randint(1, 4):03d}"
                data = f"{self.rng.choice('13')}401 01 {user}"  # disarm / arm by a user
                answer = await self.exchange(self.frame("ADM-CID", data))
            elif roll < 0.15:
                answer = await self.exchange(self.frame("ADM-CID", "1602 00 000"))
            else:
                answer = await self.exchange(self.frame("NULL", ""))
            with contextlib.suppress(TimeoutError):  # unreachable: try again soon
                await asyncio.wait_for(stop.wait(), interval if answer else min(interval, 3))

    async def exchange(self, frame: bytes, attempts: int = 3) -> bytes | None:
        """Send until answered (a panel repeats the same frame when no answer comes)."""
        for _ in range(attempts):
            self.stats.sent += 1
            try:
                answer = await send_frame(self.host, self.port, frame, timeout_s=ANSWER_TIMEOUT_S)
            except OSError as exc:
                log.info("panel %s: receiver unreachable (%s)", self.device.id, exc)
                return None
            if answer is None:
                continue
            if b'ACK"' in answer[:20]:
                self.stats.acked += 1
            else:
                self.stats.refused += 1
            return answer
        return None


async def run_panels(
    site: SiteConfig, host: str, port: int, *, rate: float, seed: int, stop: asyncio.Event
) -> list[PanelStats]:
    panels = [SimulatedPanel(d, host, port, rate=rate, seed=seed) for d in site.devices if d.sia]
    await asyncio.gather(*(p.run(stop) for p in panels))
    for panel in panels:
        log.info("panel %s: %d frames sent, %d acknowledged, %d refused", panel.device.id,
                 panel.stats.sent, panel.stats.acked, panel.stats.refused)  # fmt: skip
    return [p.stats for p in panels]
