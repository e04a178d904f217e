"""Two gateways in cluster mode on one PostgreSQL and one broker, sharing a data folder: both
start (each takes its own lock file), the site is owned by exactly one of them, its events
are stored under the lease, /api/health's report names the owner, and a graceful stop hands
the site to the other."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine, select

from gateway.cluster.site_topics import SITELESS
from gateway.config.settings import load_gateway_config
from gateway.runtime import Gateway
from gateway.storage import tables
from tests.cluster.conftest import wait_until
from tests.support.brokers import MosquittoBroker
from tests.support.compound import SITE, Publisher, event_payload, topic, write_gateway_config

pytestmark = [pytest.mark.postgres, pytest.mark.broker]


def cluster_config(tmp_path: Path, port: int, url: str, worker: str) -> Path:
    path = write_gateway_config(tmp_path, port, client_id=f"lianfang-{worker}")
    config = yaml.safe_load(path.read_text())
    config["database"]["url"] = url
    config["cluster"] = {
        "enabled": True, "worker_id": worker, "lease_ttl_s": 2.0, "renew_every_s": 0.2,
    }  # fmt: skip
    out = tmp_path / f"{worker}.yaml"
    out.write_text(yaml.safe_dump(config))
    return out


@pytest.fixture
async def pair(
    tmp_path: Path, mosquitto: MosquittoBroker, engine: Engine
) -> AsyncIterator[list[Gateway]]:
    url = engine.url.render_as_string(hide_password=False)
    gateways = [
        Gateway(load_gateway_config(cluster_config(tmp_path, mosquitto.port, url, w)))
        for w in ("gw-a", "gw-b")
    ]
    running: list[Gateway] = []  # a test that stops one takes it out
    try:
        for gw in gateways:
            await gw.start()  # the second is not kept out by the first's lock file
            running.append(gw)
        yield running
    finally:
        for gw in running:
            await gw.stop()


async def test_one_owner_stores_and_a_graceful_stop_hands_over(
    pair: list[Gateway], mosquitto: MosquittoBroker, engine: Engine
) -> None:
    a, b = pair
    assert a.cluster is not None and b.cluster is not None
    await wait_until(lambda: SITE in a.cluster.owned() or SITE in b.cluster.owned())  # type: ignore[union-attr]
    owner, other = (a, b) if SITE in a.cluster.owned() else (b, a)
    assert owner.cluster is not None and other.cluster is not None
    assert SITE not in other.cluster.owned()
    report = owner.health().cluster
    assert report is not None and report.worker_id == owner.cluster.worker_id
    assert report.renewal_ok and owner.health().status == "ok"
    assert report.sites[SITE] == owner.cluster.owned()[SITE]
    # the site-less session (topics of no known site) is leased like a site, to either worker
    assert set(report.sites) <= {SITE, SITELESS}
    other_report = other.health().cluster
    assert other_report is not None and SITE not in other_report.sites
    assert await owner.wait_subscribed(10)

    pub = Publisher(mosquitto.port)
    try:
        pub.publish([(topic("door-1"), event_payload(1))])
    finally:
        pub.close()
    await wait_until(lambda: stored(engine) >= 1)
    assert owner.writer.stats.refused == 0

    token = owner.cluster.owned()[SITE]
    pair.remove(owner)
    await owner.stop()
    await wait_until(lambda: SITE in other.cluster.owned())  # type: ignore[union-attr]
    assert other.cluster.owned()[SITE] == token + 1


def stored(engine: Engine) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(tables.events.c.event_id)).all())
