"""Publish a :class:`FleetModel` over MQTT in real time: one paho client, QoS 1.

Async API; paho's network loop runs in its own thread (``loop_start``), the schedule runs on
the caller's event loop. One client speaks for the whole fleet; MQTT allows one will per
connection, which cannot mark every device offline, so the fleet sets none: a clean stop
publishes retained ``offline`` for every device, and after a crash the gateway notices the
missing heartbeats. After a reconnect every device's current status is published again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from gateway.config.sites import SiteConfig
from gateway.demo.simulator import payloads as p
from gateway.demo.simulator.model import FleetModel, OutMessage

log = logging.getLogger(__name__)

QOS = 1
MAX_OUTSTANDING = 2000  # unacknowledged publishes before the schedule waits (back-pressure)
STOP_FLUSH_S = 5.0


@dataclass
class SimulatorStats:
    """What a run published (messages handed to paho) and how many the broker acknowledged."""

    published: int = 0
    acknowledged: int = 0
    by_type: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, type)
    scenarios: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0


class _Publisher:
    """paho client with acknowledgement counting, connect waiting and status replay."""

    def __init__(
        self,
        client_id: str,
        username: str | None,
        password: str | None,
    ) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True
        )
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.max_inflight_messages_set(200)
        self.client.reconnect_delay_set(1, 10)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self._connected = threading.Event()
        self._refused: str | None = None
        self._ever_connected = False
        self.reconnected = False
        self._lock = threading.Lock()
        self.published = 0
        self.acked = 0

    # paho thread ---------------------------------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: object,
    ) -> None:
        if reason.is_failure:
            self._refused = str(reason)
            self._connected.set()
            return
        if self._ever_connected:
            log.info("simulator reconnected; re-publishing device statuses")
            self.reconnected = True  # the schedule loop re-sends them (the model is not shared)
        self._ever_connected = True
        self._connected.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: object,
    ) -> None:
        if reason.is_failure:
            log.warning("simulator lost the broker (%s); paho reconnects", reason)

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason: ReasonCode,
        properties: object,
    ) -> None:
        with self._lock:
            self.acked += 1

    # caller ------------------------------------------------------------------------------

    async def connect(self, host: str, port: int, wait_s: float) -> None:
        self.client.connect_async(host, port, keepalive=30)
        self.client.loop_start()
        ok = await asyncio.to_thread(self._connected.wait, wait_s)
        if self._refused is not None:
            await self.close()
            raise ConnectionError(f"broker {host}:{port} refused the simulator: {self._refused}")
        if not ok:
            await self.close()
            raise ConnectionError(f"no MQTT broker answered at {host}:{port} within {wait_s:g}s")

    def publish(self, message: OutMessage) -> None:
        # Thread-safe in paho; while disconnected QoS 1 messages wait in paho's queue.
        self.client.publish(message.topic, message.payload, qos=QOS, retain=message.retain)
        with self._lock:
            self.published += 1

    @property
    def outstanding(self) -> int:
        with self._lock:
            return self.published - self.acked

    async def flush(self, wait_s: float) -> bool:
        deadline = time.monotonic() + wait_s
        while self.outstanding > 0:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def close(self) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)


async def run_simulator(
    site: SiteConfig,
    host: str = "127.0.0.1",
    port: int = 1883,
    rate: float = 5.0,
    seed: int = 1,
    stop: asyncio.Event | None = None,
    duration: float | None = None,
    username: str | None = None,
    password: str | None = None,
    *,
    client_id: str | None = None,
    seq_start: int | None = None,
    connect_timeout: float = 10.0,
) -> SimulatorStats:
    """Run the fleet of ``site`` against the broker until ``stop`` is set or ``duration`` ends.

    ``rate`` is ordinary events per second across the fleet; heartbeats and anomalies scale
    with it (see :mod:`gateway.demo.simulator.model`). ``seed`` fixes every decision. ``seq_start``
    defaults to the start time in milliseconds, so a second run does not reuse the
    ``seq`` values (event ids) of the first; pass 1 for reproducible payloads.
    Raises ``ConnectionError`` when no broker accepts the connection.
    """
    if duration is not None and duration < 0:
        raise ValueError("duration must be >= 0")
    stop = stop or asyncio.Event()
    started_at = datetime.now(p.CHINA_TZ)
    model = FleetModel(
        site,
        rate=rate,
        seed=seed,
        start=started_at,
        seq_start=int(started_at.timestamp() * 1000) if seq_start is None else seq_start,
    )
    publisher = _Publisher(client_id or f"lianfang-sim-{site.id}-{os.getpid()}", username, password)
    await publisher.connect(host, port, connect_timeout)
    log.info(
        "simulating %d devices of %s on %s:%d at %g events/s (seed %d)",
        len(model.devices),
        site.id,
        host,
        port,
        rate,
        seed,
    )
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    stats = SimulatorStats()
    try:
        for message in model.start_messages():
            publisher.publish(message)
        while not stop.is_set():
            now = loop.time() - t0
            if duration is not None and now >= duration:
                break
            if publisher.reconnected:
                publisher.reconnected = False
                for message in model.status_messages():
                    publisher.publish(message)
            for message in model.due(now):
                publisher.publish(message)
            # The broker is slower than the schedule: wait for acknowledgements (counted by
            # paho's thread; polling is cheaper than waking the loop on every PUBACK).
            while publisher.outstanding > MAX_OUTSTANDING and not stop.is_set():  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            delay = model.next_due - (loop.time() - t0)
            if duration is not None:
                delay = min(delay, duration - (loop.time() - t0))
            if delay > 0.05:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
            else:
                await asyncio.sleep(max(delay, 0.0))
    finally:
        stats.elapsed_s = loop.time() - t0
        for message in model.stop_messages():
            publisher.publish(message)
        if not await publisher.flush(STOP_FLUSH_S):
            log.warning("%d messages were not acknowledged before stopping", publisher.outstanding)
        await publisher.close()
        stats.published = publisher.published
        stats.acknowledged = publisher.acked
        stats.by_type = model.sent
        stats.scenarios = model.scenarios_run
    return stats
