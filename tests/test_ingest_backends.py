"""The whole ingest path against the other supported back ends: the embedded broker
(MQTT 3.1.1, used by the demo) and PostgreSQL (when reachable)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from gateway.config.settings import load_gateway_config
from gateway.demo.broker import EmbeddedBroker
from gateway.runtime import Gateway
from gateway.storage import tables
from tests.conftest import postgres_database
from tests.support.brokers import MosquittoBroker
from tests.support.compound import (
    DOORS,
    PANIC,
    Publisher,
    event_payload,
    topic,
    write_gateway_config,
)


async def wait_until(predicate, within_s: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def count(engine, table) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


@pytest.mark.broker
async def test_ingest_through_the_embedded_broker(tmp_path: Path) -> None:
    broker = EmbeddedBroker(port=0)
    await broker.start()
    try:
        config = load_gateway_config(write_gateway_config(tmp_path, broker.port))
        gateway = Gateway(config, protocol="v311")
        await gateway.start()
        try:
            assert await gateway.wait_subscribed(10)
            items = [(topic(DOORS[i % 5]), event_payload(i, DOORS[i % 5])) for i in range(100)]
            items.append((topic(PANIC), event_payload(1000, PANIC, "panic")))
            items.append((topic(), b"not json"))
            await asyncio.to_thread(lambda: Publisher(broker.port).publish(items))
            await wait_until(
                lambda: gateway.writer.stats.stored == 101 and gateway.writer.stats.quarantined == 1
            )
            assert gateway.normaliser.stats.rejected == {"malformed_json": 1}
        finally:
            await gateway.stop()
    finally:
        await broker.stop()


@pytest.mark.broker
@pytest.mark.postgres
async def test_ingest_into_postgresql(tmp_path: Path, mosquitto: MosquittoBroker) -> None:
    with postgres_database() as url:
        config_path = write_gateway_config(tmp_path, mosquitto.port)
        config = load_gateway_config(config_path).model_copy(
            update={
                "database": load_gateway_config(config_path).database.model_copy(
                    update={"url": url}
                )
            }
        )
        gateway = Gateway(config)
        await gateway.start()
        try:
            assert await gateway.wait_subscribed(10)
            items = [(topic(DOORS[i % 5]), event_payload(i, DOORS[i % 5])) for i in range(200)]
            pub = Publisher(mosquitto.port)
            await asyncio.to_thread(pub.publish, items)
            await asyncio.to_thread(pub.publish, items[:20])  # re-sent by the devices
            pub.close()
            await wait_until(lambda: gateway.writer.stats.stored == 200)
            await asyncio.to_thread(gateway.writer.flush)
        finally:
            await gateway.stop()
        engine = create_engine(url)
        try:
            assert count(engine, tables.events) == 200
            with engine.connect() as conn:
                seen = (
                    conn.execute(
                        select(tables.devices.c.id).where(
                            tables.devices.c.last_seen_at.is_not(None)
                        )
                    )
                    .scalars()
                    .all()
                )
            assert set(seen) == set(DOORS)
        finally:
            engine.dispose()
