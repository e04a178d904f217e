"""The database goes down under a running gateway (docs/database-outage.md): SQLite locked by
another connection, PostgreSQL unreachable behind a proxy we cut. While it is down nothing is
acknowledged, health says so, and a panic reaches the police desk's live channels (MQTT and
the console push) at once, marked not stored; once it is back everything is stored exactly
once, the incident is opened once, and every message is acknowledged."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from gateway.config.settings import load_gateway_config
from gateway.incidents.tables import incidents
from gateway.runtime import Gateway
from gateway.storage import db, tables
from tests.conftest import postgres_database, postgres_url
from tests.support.brokers import MosquittoBroker
from tests.support.tcp_proxy import TcpProxy
from tests.support.two_sites import OTHER, SITE, write_config

PANIC = (f"lianfang/{SITE}/panic-1/event", {"v": 1, "seq": 7, "kind": "alarm", "type": "panic"})
ROUTINE = (f"lianfang/{OTHER}/door-9/event", {"v": 1, "seq": 3, "kind": "access", "type": "heartbeat"})  # fmt: skip
DESK = "lianfang/notify/police-desk/beat-n"


async def wait_until(predicate: Callable[[], Any], within_s: float = 20.0) -> Any:
    deadline = time.monotonic() + within_s
    while not (found := predicate()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
    return found


class Desk:
    """The police desk's MQTT client: every notification it receives, in order."""

    def __init__(self, port: int) -> None:
        self.received: list[dict[str, Any]] = []
        self._ready = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id="test-desk"
        )
        self.client.on_message = lambda _c, _u, m: self.received.append(
            {"topic": m.topic, **json.loads(m.payload)}
        )
        self.client.on_subscribe = lambda *_a: self._ready.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{DESK}/#", qos=1)
        self.client.subscribe(DESK, qos=1)
        self.client.loop_start()
        assert self._ready.wait(10)

    def occasions(self) -> list[tuple[str, Any]]:
        return [(m.get("occasion"), m.get("stored", True)) for m in self.received]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish(port: int, messages: list[tuple[str, dict[str, Any]]]) -> None:
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="test-dev")
    client.connect("127.0.0.1", port)
    client.loop_start()
    for topic, body in messages:
        client.publish(topic, json.dumps(body), qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def count(gw: Gateway, table: Any, *where: Any) -> int:
    with gw.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


async def outage_scenario(
    gw: Gateway, port: int, down: Callable[[], None], up: Callable[[], None]
) -> None:
    acks: list[Any] = []  # the gateway's PUBACKs to the broker

    def recording(send: Callable[[list[Any]], None]) -> Callable[[list[Any]], None]:
        def record(tokens: list[Any]) -> None:
            acks.extend(tokens)
            send(tokens)

        return record

    gw.consumer.send_acks = recording(gw.consumer.send_acks)  # type: ignore[method-assign]
    gw.ack_gate._send = recording(gw.ack_gate._send)
    console: list[dict[str, Any]] = []

    async def watch() -> None:
        async for item in gw.incidents.hub.watch():
            console.append(item)

    watcher = asyncio.create_task(watch())
    desk = await asyncio.to_thread(Desk, port)
    try:
        down()
        await asyncio.to_thread(publish, port, [ROUTINE, PANIC])
        # The desk hears of the panic at once, marked not stored, on MQTT and the console.
        await wait_until(lambda: ("unstored", False) in desk.occasions())
        told = next(m for m in desk.received if m.get("occasion") == "unstored")
        assert told["status_zh"] == "未入库" and told["incident_id"] is None
        assert told["device_id"] == "panic-1" and told["severity"] == "P1"
        await wait_until(
            lambda: any(i.get("occasion") == "unstored" and not i["stored"] for i in console)
        )
        # Health is truthful: down since …, ingest paused, the panic waiting to be stored.
        health = await wait_until(
            lambda: (h := gw.health()).writer.database_down_since is not None and h
        )
        assert health.writer.ingest_paused and health.writer.database_error
        assert health.pipeline.panics_not_stored == 1
        assert health.writer.backlog > 0  # the batch kept for the retry counts
        # Nothing is acknowledged and no incident opened while it is down.
        await asyncio.sleep(1.0)  # give a wrong acknowledgement the time to show up
        assert acks == []
        assert ("new", True) not in desk.occasions()
    finally:
        up()
    try:
        # Back: the events and the incident are stored, once; every message acknowledged.
        await wait_until(lambda: len(acks) == 2)
        await wait_until(lambda: ("new", True) in desk.occasions())
        await asyncio.to_thread(gw.writer.flush)
        await gw.incidents.service.settled(10)
        assert count(gw, tables.events, tables.events.c.device_id == "panic-1") == 1
        assert count(gw, tables.events, tables.events.c.device_id == "door-9") == 1
        assert count(gw, incidents, incidents.c.device_id == "panic-1") == 1
        await wait_until(lambda: gw.health().writer.database_down_since is None)
        assert gw.health().pipeline.panics_not_stored == 0
        assert desk.occasions().count(("unstored", False)) == 1
    finally:
        watcher.cancel()
        desk.close()


@asynccontextmanager
async def running(config_path: Path, url: str | None = None) -> AsyncIterator[Gateway]:
    config = load_gateway_config(config_path)
    if url is not None:
        config = config.model_copy(
            update={"database": config.database.model_copy(update={"url": url})}
        )
    gw = Gateway(config)
    await gw.start()
    try:
        assert await gw.wait_subscribed(15)
        yield gw
    finally:
        await gw.stop()


@pytest.mark.broker
async def test_sqlite_locked_by_another_connection(
    tmp_path: Path, mosquitto: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "SQLITE_BUSY_TIMEOUT_S", 0.3)  # fail fast instead of waiting 30 s
    async with running(write_config(tmp_path, mosquitto.port)) as gw:
        path = gw.engine.url.database
        assert path is not None
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)

        def lock() -> None:
            other.execute("BEGIN EXCLUSIVE")

        def unlock() -> None:
            other.execute("ROLLBACK")
            other.close()

        await outage_scenario(gw, mosquitto.port, lock, unlock)


@pytest.mark.broker
@pytest.mark.postgres
async def test_postgresql_unreachable(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    if postgres_url() is None:
        pytest.skip("PostgreSQL is not reachable")
    with postgres_database() as url:
        from sqlalchemy.engine import make_url

        real = make_url(url)
        proxy = TcpProxy(real.port or 5432)  # the test's PostgreSQL is on loopback
        proxy.start()
        try:
            via_proxy = real.set(host="127.0.0.1", port=proxy.port)
            address = via_proxy.render_as_string(hide_password=False)
            async with running(write_config(tmp_path, mosquitto.port), address) as gw:
                await outage_scenario(gw, mosquitto.port, proxy.cut, proxy.restore)
        finally:
            proxy.close()
