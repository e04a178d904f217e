"""Fencing: a worker that lost a site's lease (a paused process) resumes and its write for
the site is refused in the write transaction: nothing stored, nothing acknowledged; the new
owner's write for the site is stored. Events of sites the worker does not own are not
fenced."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, select, text

from gateway.cluster import LeaseFence, fence_ok, leases
from gateway.storage import tables
from gateway.storage.writer import BatchWriter, WriteItem
from tests.test_api import make_event

pytestmark = pytest.mark.postgres


def take(engine: Engine, worker: str, site: str, *, ttl_s: float = 60.0) -> int:
    with engine.begin() as conn:
        leases.add_sites(conn, [site])
        got = leases.acquire(conn, worker, [site], count=1, ttl_s=ttl_s)
    assert site in got
    return got[site]


def expire(engine: Engine, site: str) -> None:
    """What the database's clock does to a lease that was not renewed (a paused worker)."""
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE site_leases SET expires_at = now() - interval '1 second' WHERE site = :s"),
            {"s": site},
        )


def stored_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(tables.events.c.event_id)).scalars())


class Worker:
    """A batch writer fenced by a worker's leases, as the gateway wires it in cluster mode."""

    def __init__(self, engine: Engine, worker_id: str, owned: dict[str, int]) -> None:
        self.owned = owned
        self.writer = BatchWriter(engine, batch_size=100, interval_s=0.01)
        self.writer.fence = LeaseFence(worker_id, lambda: self.owned)
        self.acked: list[Any] = []
        self.writer.acknowledge = self.acked.extend
        self.writer.start()

    def write(self, *items: WriteItem) -> None:
        self.writer.submit_many(list(items))
        assert self.writer.flush(30)

    def stop(self) -> None:
        self.writer.stop()


def test_fence_ok_only_for_the_holder_under_its_token(engine: Engine) -> None:
    old = take(engine, "paused", "s1")
    expire(engine, "s1")
    with engine.begin() as conn:
        assert not fence_ok(conn, "s1", "paused", old)  # expired, though nobody took it yet
    new = take(engine, "survivor", "s1")
    assert new == old + 1
    with engine.begin() as conn:
        assert fence_ok(conn, "s1", "survivor", new)
        assert not fence_ok(conn, "s1", "paused", old)
        assert not fence_ok(conn, "s1", "paused", new)  # the token alone is not enough
        assert not fence_ok(conn, "s1", "survivor", old)  # nor the worker alone


def test_a_resumed_worker_is_refused_and_the_new_owner_stores(engine: Engine) -> None:
    old = take(engine, "paused", "s1")
    paused = Worker(engine, "paused", {"s1": old})
    survivor = Worker(engine, "survivor", {})
    try:
        paused.write(WriteItem([make_event(1, site="s1")], ack="m1"))
        assert stored_ids(engine) == {"e0001"} and paused.acked == ["m1"]

        # The paused worker's lease expires and the survivor takes the site.
        expire(engine, "s1")
        survivor.owned = {"s1": take(engine, "survivor", "s1")}

        # It resumes, still believing it owns s1 under the old token: refused, unacknowledged;
        # its event of another site (not its own, so not fenced) in the same batch is stored.
        paused.write(
            WriteItem([make_event(2, site="s1")], ack="m2"),
            WriteItem([make_event(3, site="s9")], ack="m3"),
        )
        assert stored_ids(engine) == {"e0001", "e0003"}
        assert paused.acked == ["m1", "m3"]
        assert paused.writer.stats.refused == 1

        # The broker redelivers m2 to the new owner: stored once, acknowledged.
        survivor.write(WriteItem([make_event(2, site="s1")], ack="m2"))
        assert stored_ids(engine) == {"e0001", "e0002", "e0003"}
        assert survivor.acked == ["m2"] and survivor.writer.stats.refused == 0
    finally:
        paused.stop()
        survivor.stop()


def test_events_stamped_under_an_older_token_of_the_same_worker_are_refused(
    engine: Engine,
) -> None:
    """Received before the worker lost the site and took it again: the rule state was rebuilt
    without them, so they wait for their redelivery under the new lease."""
    first = take(engine, "w", "s1")
    worker = Worker(engine, "w", {"s1": first})
    try:
        expire(engine, "s1")
        second = take(engine, "w", "s1")
        worker.write(WriteItem([make_event(1, site="s1")], ack="old", leases={"s1": first}))
        worker.owned = {"s1": second}
        worker.write(WriteItem([make_event(2, site="s1")], ack="new"))
        assert stored_ids(engine) == {"e0002"} and worker.acked == ["new"]
    finally:
        worker.stop()
