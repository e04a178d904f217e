"""Per-site MQTT persistent sessions (issue 16 part 2) against a real Mosquitto: a site's
messages wait at the broker while nobody owns it, reach only that site's session, and what
one owner did not acknowledge is redelivered to the next."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest
from sqlalchemy import Engine, func, select

from device_adapters.registry import load_adapters
from gateway.bus import BatchSubscription, EventBus
from gateway.cluster.site_sessions import SiteSessions
from gateway.cluster.site_topics import SITELESS, SiteTopics, session_client_id
from gateway.config.settings import IngestConfig, MqttConfig
from gateway.config.sites import SiteConfig, SiteRegistry
from gateway.events import Event
from gateway.ingest.pipeline import Normaliser
from gateway.storage import tables
from gateway.storage.db import make_engine, migrate
from gateway.storage.writer import BatchWriter
from tests.conftest import CONFIG
from tests.support.brokers import MosquittoBroker
from tests.support.compound import Publisher

pytestmark = pytest.mark.broker


def site(site_id: str, *devices: tuple[str, str | None]) -> SiteConfig:
    return SiteConfig.model_validate(
        {
            "id": site_id,
            "devices": [{"id": d, "kind": "access", "profile": p} for d, p in devices],
        }
    )


REGISTRY = SiteRegistry(
    [
        site("site-a", ("door-a1", "lianfang"), ("zb-a1", "zigbee2mqtt"), ("any-a1", None)),
        site("site-b", ("door-b1", "lianfang"), ("zb-b1", "zigbee2mqtt")),
    ]
)


def payload(seq: int) -> bytes:
    return json.dumps(
        {"v": 1, "seq": seq, "ts": "2026-11-22T10:00:00+08:00", "kind": "access",
         "type": "access_granted", "attrs": {"door": "1-1"}}
    ).encode()  # fmt: skip


def message(site_id: str, device: str, seq: int) -> tuple[str, bytes]:
    return f"lianfang/{site_id}/{device}/event", payload(seq)


async def until(predicate: Callable[[], bool], what: str) -> None:
    """Wait on a condition (a test that hangs says what it waited for)."""
    try:
        async with asyncio.timeout(20):
            while not predicate():  # noqa: ASYNC110 (a database count: no event to wait on)
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


# ---- which topics a session takes (no broker) ----------------------------------------------


@pytest.fixture(scope="module")
def topics() -> SiteTopics:
    adapters = load_adapters(CONFIG / "profiles")
    return SiteTopics(lambda: adapters, lambda: REGISTRY)


def test_a_site_session_takes_its_site_and_its_devices_topics(topics: SiteTopics) -> None:
    filters = topics.filters("site-a")
    assert "lianfang/site-a/+/event" in filters and "lianfang/site-a/+/status" in filters
    assert "zigbee2mqtt/zb-a1" in filters and "zigbee2mqtt/zb-a1/availability" in filters
    assert "hikvision/any-a1/event" in filters  # no profile named: every device pattern
    assert "hikvision/zb-a1/event" not in filters  # its profile is zigbee2mqtt
    assert not [f for f in filters if "site-b" in f or "-b1" in f or "+/+" in f]
    assert "frigate/events" not in filters  # no site in it: the site-less session's


def test_the_siteless_session_reads_only_what_no_site_session_takes(topics: SiteTopics) -> None:
    assert "frigate/events" in topics.filters(SITELESS)
    assert "lianfang/+/+/event" in topics.filters(SITELESS)
    reads = topics.siteless_accepts
    assert not reads("lianfang/site-a/door-a1/event") and not reads("zigbee2mqtt/zb-b1")
    assert reads("frigate/events")
    assert reads("lianfang/site-x/door-x/event")  # an unknown site: its panics still raised
    assert reads("zigbee2mqtt/stranger")  # an unregistered device
    assert reads("hikvision/zb-a1/event")  # registered, but under another profile
    assert topics.site_of("zigbee2mqtt/zb-b1/availability") == "site-b"


def test_client_ids_are_stable_per_site() -> None:
    assert session_client_id("lf", "site-a") == "lf-site-site-a"
    assert session_client_id("lf", SITELESS) == "lf-siteless"


# ---- against Mosquitto ----------------------------------------------------------------------


class Rig:
    """One worker's ingest: normaliser, bus, batch writer on SQLite, and its site sessions."""

    def __init__(
        self,
        broker: MosquittoBroker,
        db: Engine,
        prefix: str,
        *,
        commit: bool,
        protocol: Literal["v5", "v311"] = "v5",
    ) -> None:
        adapters = load_adapters(CONFIG / "profiles")
        self.bus = EventBus(asyncio.get_running_loop())
        self.heard: BatchSubscription = self.bus.subscribe_batches("test")
        self.events: list[Event] = []
        self.writer = BatchWriter(db, interval_s=0.01)
        if commit:
            self.writer.start()
        self.sessions = SiteSessions(
            MqttConfig(host=broker.host, port=broker.port, client_id=prefix),
            Normaliser(adapters, REGISTRY, IngestConfig()),
            self.writer,
            self.bus,
            SiteTopics(lambda: adapters, lambda: REGISTRY),
            session_expiry_s=3600,
            protocol=protocol,
            release_drain_s=0.2,
        )
        self._drain = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        while True:
            self.events.extend(await self.heard.get())

    def sites_heard(self) -> set[str]:
        return {e.site for e in self.events}

    async def close(self) -> None:
        await self.sessions.stop()
        self._drain.cancel()
        self.writer.stop(timeout=5)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'lianfang.db'}")
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
async def rigs(mosquitto: MosquittoBroker, db: Engine) -> AsyncIterator[list[Rig]]:
    made: list[Rig] = []
    yield made
    for rig in made:
        await rig.close()


def stored(db: Engine, site_id: str) -> int:
    with db.connect() as conn:
        c = tables.events.c
        return int(
            conn.execute(select(func.count()).where(c.site == site_id)).scalar_one()  # type: ignore[call-overload]
        )


def publish(broker: MosquittoBroker, items: list[tuple[str, bytes]]) -> None:
    publisher = Publisher(broker.port, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    try:
        publisher.publish(items)  # returns once the broker has acknowledged every one
    finally:
        publisher.close()


@pytest.mark.parametrize("protocol", ["v5", "v311"])
async def test_a_sites_messages_wait_for_its_session_and_reach_only_it(
    mosquitto: MosquittoBroker, db: Engine, rigs: list[Rig], protocol: Literal["v5", "v311"]
) -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    rig = Rig(mosquitto, db, prefix, commit=True, protocol=protocol)
    rigs.append(rig)
    await rig.sessions.acquire("site-a", 1)  # the session exists at the broker from now on
    await rig.sessions.release("site-a")
    assert rig.sessions.sites() == []

    a = [message("site-a", "door-a1", n) for n in range(1, 41)]
    b = [message("site-b", "door-b1", n) for n in range(1, 11)]
    await asyncio.to_thread(publish, mosquitto, a + b)  # nobody owns site-a meanwhile

    await rig.sessions.acquire("site-a", 2)
    await until(lambda: stored(db, "site-a") == 40, "every queued site-a message")
    assert rig.sites_heard() == {"site-a"} and stored(db, "site-b") == 0
    assert len({e.event_id for e in rig.events}) == 40
    status = rig.sessions.status()["site-a"]
    assert status.connected and status.connects == 1


async def test_what_was_not_acknowledged_goes_to_the_next_owner(
    mosquitto: MosquittoBroker, db: Engine, rigs: list[Rig]
) -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    # the first owner hears the messages but never commits them (its database hangs)
    first = Rig(mosquitto, db, prefix, commit=False)
    rigs.append(first)
    await first.sessions.acquire("site-a", 1)
    items = [message("site-a", "door-a1", n) for n in range(1, 6)]
    await asyncio.to_thread(publish, mosquitto, items)
    await until(lambda: len(first.events) == 5, "the first owner hearing all five")
    await first.sessions.release("site-a")  # lost: disconnects, acknowledging nothing
    assert stored(db, "site-a") == 0

    second = Rig(mosquitto, db, prefix, commit=True)  # the next owner: same client id
    rigs.append(second)
    await second.sessions.acquire("site-a", 2)
    await until(lambda: stored(db, "site-a") == 5, "the redelivered messages stored")
    assert sorted(e.event_id for e in second.events) == sorted(e.event_id for e in first.events)


async def test_committed_messages_are_not_redelivered(
    mosquitto: MosquittoBroker, db: Engine, rigs: list[Rig]
) -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    first = Rig(mosquitto, db, prefix, commit=True)
    rigs.append(first)
    await first.sessions.acquire("site-b", 1)
    await asyncio.to_thread(publish, mosquitto, [message("site-b", "door-b1", n) for n in (1, 2)])
    await until(lambda: stored(db, "site-b") == 2, "both stored")
    await first.sessions.release("site-b")  # handed over in order: acknowledged first

    second = Rig(mosquitto, db, prefix, commit=True)
    rigs.append(second)
    await second.sessions.acquire("site-b", 2)
    await asyncio.to_thread(publish, mosquitto, [message("site-b", "door-b1", 3)])
    await until(lambda: stored(db, "site-b") == 3, "the next message stored")
    await until(lambda: len(second.events) == 1, "the next message on the bus")
    # the broker resends what it kept before anything new: the first heard is the new one
    assert [e.event_id for e in second.events] == ["lianfang:door-b1:3"]


async def test_the_siteless_session_leaves_a_sites_messages_to_it(
    mosquitto: MosquittoBroker, db: Engine, rigs: list[Rig]
) -> None:
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    rig = Rig(mosquitto, db, prefix, commit=True)
    rigs.append(rig)
    topics = rig.sessions.topics
    judged: list[str] = []  # topics the site-less session was handed

    def accepts(topic: str) -> bool:
        judged.append(topic)
        return SiteTopics.siteless_accepts(topics, topic)

    topics.siteless_accepts = accepts  # type: ignore[method-assign]
    await rig.sessions.acquire("site-a", 1)  # site-a's queue exists from now on
    await rig.sessions.release("site-a")
    await rig.sessions.acquire(SITELESS, 1)
    items = [message("site-a", "door-a1", 1), message("site-x", "door-x1", 1)]
    await asyncio.to_thread(publish, mosquitto, items)
    normaliser = rig.sessions.normaliser
    # the unknown site's message is read (an unknown device: quarantined; its panic would be
    # raised), site-a's acknowledged unread
    await until(lambda: normaliser.stats.messages == 1, "the unknown site's message read")
    await rig.sessions.release(SITELESS)
    assert rig.events == [] and sum(normaliser.stats.rejected.values()) == 1

    await rig.sessions.acquire("site-a", 2)  # left to its own session
    await until(lambda: stored(db, "site-a") == 1, "site-a's message stored by its session")
    await rig.sessions.acquire(SITELESS, 2)
    await asyncio.to_thread(publish, mosquitto, [message("site-x", "door-x1", 2)])
    await until(lambda: normaliser.stats.messages == 3, "the next unknown-site message")
    # nothing the site-less session had was redelivered: both were acknowledged
    assert judged == [items[0][0], items[1][0], items[1][0]]
