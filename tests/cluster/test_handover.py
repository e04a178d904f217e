"""A site handed over between two gateway workers on one database and one Mosquitto, in
cluster mode (per-site sessions, rebuild): a sequence begun on the first worker fires once on
the second; messages published while nobody owns the site are not lost. The site ownership is
a local stand-in for the lease manager (``gateway.cluster.contracts.SiteOwnership``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from sqlalchemy import func, select

from gateway.cluster.contracts import AcquiredListener, LostListener
from gateway.cluster.wiring import use_site_sessions
from gateway.config.settings import load_gateway_config
from gateway.incidents.tables import incidents
from gateway.runtime import Gateway
from gateway.storage import tables
from tests.conftest import postgres_database
from tests.support.brokers import MosquittoBroker
from tests.support.compound import SITE, Publisher, topic, write_gateway_config

pytestmark = pytest.mark.broker

RULES = """
rules:
  - id: probe_then_force
    severity: P2
    category: access
    title: {zh: "刷卡被拒后门被强开", en: "Denied, then the door forced"}
    cooldown: 10m
    condition:
      type: sequence
      steps:
        - {kind: access, type: access_denied}
        - {kind: access, type: door_forced_open}
      within: 5m
      group_by: [site]
"""


class LocalOwnership:
    """Grants and takes sites by hand, calling the listeners as the lease manager does."""

    def __init__(self) -> None:
        self._owned: dict[str, int] = {}
        self._acquired: list[AcquiredListener] = []
        self._lost: list[LostListener] = []

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        for site in list(self._owned):
            await self.take(site)

    def owned(self) -> Mapping[str, int]:
        return self._owned

    def on_acquired(self, cb: AcquiredListener) -> None:
        self._acquired.append(cb)

    def on_lost(self, cb: LostListener) -> None:
        self._lost.append(cb)

    async def grant(self, site: str, token: int) -> None:
        for cb in self._acquired:
            await cb(site, token)
        self._owned = {**self._owned, site: token}

    async def take(self, site: str) -> None:
        self._owned = {s: t for s, t in self._owned.items() if s != site}
        for cb in self._lost:
            await cb(site)


def payload(seq: int, type_: str) -> bytes:
    now = datetime.now(UTC).isoformat()
    return json.dumps(
        {"v": 1, "seq": seq, "ts": now, "kind": "access", "type": type_, "attrs": {"door": "1-1"}}
    ).encode()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with ExitStack() as stack:
        if request.param == "postgres":
            yield stack.enter_context(postgres_database())
        else:
            yield f"sqlite:///{tmp_path / 'shared.db'}"


def worker(tmp: Path, port: int, database_url: str, rules: Path) -> Gateway:
    path = write_gateway_config(tmp, port, client_id="lf-handover")
    config = yaml.safe_load(path.read_text())
    config["database"]["url"] = database_url
    config["rules_dir"] = str(rules)
    path.write_text(yaml.safe_dump(config))
    return Gateway(load_gateway_config(path))


async def until(gateway: Gateway, query: object, want: int, what: str) -> None:
    def count() -> int:
        with gateway.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())  # type: ignore[call-overload]

    try:
        async with asyncio.timeout(30):
            while await asyncio.to_thread(count) != want:  # noqa: ASYNC110 (database rows)
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


def publish(port: int, items: list[tuple[str, bytes]]) -> None:
    publisher = Publisher(port, client_id="handover-publisher")
    try:
        publisher.publish(items)
    finally:
        publisher.close()


async def test_a_sequence_begun_on_one_worker_fires_once_on_the_next(
    tmp_path: Path, mosquitto: MosquittoBroker, database_url: str
) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "handover.yaml").write_text(RULES, encoding="utf-8")
    stored_events = select(func.count()).select_from(tables.events)
    opened = select(func.count()).select_from(incidents)

    first = worker(tmp_path / "w1", mosquitto.port, database_url, rules)
    first_sites = LocalOwnership()
    use_site_sessions(first, first_sites, session_expiry_s=3600)
    await first.start()
    try:
        await first_sites.grant(SITE, 1)
        await asyncio.to_thread(publish, mosquitto.port, [(topic(), payload(1, "access_denied"))])
        await until(first, stored_events, 1, "step 1 stored by the first worker")
        assert await first.incidents.service.settled(10)
        await first_sites.take(SITE)  # the first worker loses the site
    finally:
        await first.stop()

    # nobody owns the site: step 2 waits at the broker
    await asyncio.to_thread(publish, mosquitto.port, [(topic(), payload(2, "door_forced_open"))])

    second = worker(tmp_path / "w2", mosquitto.port, database_url, rules)
    second_sites = LocalOwnership()
    sessions = use_site_sessions(second, second_sites, session_expiry_s=3600)
    await second.start()
    try:
        await second_sites.grant(SITE, 2)  # rebuilds from step 1, then resumes the session
        assert sessions.holds(SITE)
        health = second.health().broker  # the site sessions', not the unstarted consumer's
        assert health.connected and health.reconnects == 0
        await until(second, stored_events, 2, "step 2 resumed from the broker and stored")
        await until(second, opened, 1, "the sequence's incident")
        while second.rules.backlog:  # noqa: ASYNC110 (nothing to wait on but the count)
            await asyncio.sleep(0.02)
        assert await second.incidents.service.settled(10)
        with second.engine.connect() as conn:
            [(rule_id, signal_count)] = conn.execute(
                select(incidents.c.rule_id, incidents.c.signal_count)
            ).all()
        assert rule_id == "probe_then_force" and signal_count == 1
    finally:
        await second_sites.stop()
        await second.stop()
