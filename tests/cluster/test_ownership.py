"""Site leases between several workers in one process, on short TTLs: an even spread, a
joining worker taking its share, a graceful stop handing over at once, a dead worker's leases
expiring and taken, and fencing tokens that only grow. Waits are on conditions, never on
the wall clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from sqlalchemy import Engine, select

from gateway.cluster import SiteOwnership, leases
from gateway.cluster.tables import site_leases
from gateway.health import ClusterHealth
from tests.cluster.conftest import wait_until

pytestmark = pytest.mark.postgres

SITES = [f"site-{n:02d}" for n in range(12)]


class Recorder:
    """A worker's listeners: what it heard, in order."""

    def __init__(self) -> None:
        self.acquired: list[tuple[str, int]] = []
        self.lost: list[str] = []

    async def on_acquired(self, site: str, token: int) -> None:
        self.acquired.append((site, token))

    async def on_lost(self, site: str) -> None:
        self.lost.append(site)


Make = Callable[..., SiteOwnership]


@pytest.fixture
async def make(engine: Engine) -> AsyncIterator[Make]:
    made: list[SiteOwnership] = []

    def _make(
        worker_id: str, *, ttl: float = 1.0, renew: float = 0.1, record: Recorder | None = None
    ) -> SiteOwnership:
        o = SiteOwnership(engine, SITES, worker_id=worker_id, lease_ttl_s=ttl, renew_every_s=renew)
        if record is not None:
            o.on_acquired(record.on_acquired)
            o.on_lost(record.on_lost)
        made.append(o)
        return o

    yield _make
    for o in made:
        await o.stop()


def tokens(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {s: int(t) for s, t in conn.execute(select(site_leases.c.site, site_leases.c.token))}


def spread(*workers: SiteOwnership) -> list[int]:
    return [len(w.owned()) for w in workers]


def disjoint_and_complete(*workers: SiteOwnership) -> bool:
    owned = [site for w in workers for site in w.owned()]
    return len(owned) == len(set(owned)) == len(SITES)


async def test_three_workers_spread_the_sites_evenly(make: Make) -> None:
    records = [Recorder() for _ in range(3)]
    workers = [make(f"w{n}", record=r) for n, r in enumerate(records)]
    for w in workers:
        await w.start()
    await wait_until(lambda: spread(*workers) == [4, 4, 4] and disjoint_and_complete(*workers))
    for w, r in zip(workers, records, strict=True):
        # every site it owns was announced with the token it owns it by, before it counted
        assert {s: t for s, t in r.acquired if s in w.owned()} == dict(w.owned())
        health = ClusterHealth.from_status(w.status())  # what /api/health shows
        assert health.sites == dict(w.owned()) and health.renewal_ok
        assert health.live_workers == 3 and health.lease_expires_at is not None


async def test_a_joining_worker_takes_its_share(make: Make, engine: Engine) -> None:
    first, lost_by_first = make("first", record=(r := Recorder())), r
    await first.start()
    await wait_until(lambda: len(first.owned()) == 12)
    before = tokens(engine)
    second = make("second")
    await second.start()
    await wait_until(
        lambda: spread(first, second) == [6, 6] and disjoint_and_complete(first, second)
    )
    moved = set(second.owned())
    assert set(lost_by_first.lost) == moved  # released by the first, heard by its listeners
    after = tokens(engine)
    assert all(after[s] == before[s] + 1 for s in moved)  # taken again: a new token each
    assert all(after[s] == before[s] for s in set(SITES) - moved)


async def test_a_graceful_stop_hands_the_sites_over_at_once(make: Make) -> None:
    # A TTL far longer than the wait: only the release at stop can explain the takeover.
    stays = make("stays", ttl=120.0, renew=0.1)
    leaves = make("leaves", ttl=120.0, renew=0.1, record=(heard := Recorder()))
    await stays.start()
    await leaves.start()
    await wait_until(lambda: spread(stays, leaves) == [6, 6])
    had = set(leaves.owned())
    await leaves.stop()
    assert set(heard.lost) == had and leaves.owned() == {}
    await wait_until(lambda: len(stays.owned()) == 12, within=20)


async def test_a_dead_workers_leases_expire_and_are_taken(make: Make, engine: Engine) -> None:
    alive = make("alive", ttl=1.0, renew=0.1)
    paused = make("paused", ttl=1.0, renew=0.1)
    await alive.start()
    await paused.start()
    await wait_until(lambda: spread(alive, paused) == [6, 6])
    stale = dict(paused.owned())
    # A paused process: its renewal stops, nothing is released, it still believes it owns.
    assert paused._task is not None
    paused._task.cancel()
    await wait_until(lambda: len(alive.owned()) == 12, within=30)
    now = tokens(engine)
    assert all(now[s] > t for s, t in stale.items())  # taken with newer tokens
    assert dict(paused.owned()) == stale  # it has not noticed yet
    with engine.connect() as conn:
        state = conn.execute(leases._LIVE).one()
    assert state[0] == 1  # only one live worker now


async def test_a_resumed_worker_gives_up_what_expired_and_rejoins(
    make: Make, engine: Engine
) -> None:
    alive = make("alive", ttl=1.0, renew=0.1)
    paused = make("paused", ttl=1.0, renew=0.1, record=(heard := Recorder()))
    await alive.start()
    await paused.start()
    await wait_until(lambda: spread(alive, paused) == [6, 6])
    stale = dict(paused.owned())
    assert paused._task is not None
    paused._task.cancel()
    await wait_until(lambda: len(alive.owned()) == 12, within=30)
    heard.acquired.clear()
    await paused._tick()  # it wakes up: its leases are not renewed but lost
    assert set(heard.lost) == set(stale)
    assert paused.owned() == {} and heard.acquired == []  # every site held by the survivor
    paused._task = asyncio.create_task(paused._run())  # and it rejoins, taking its share back
    await wait_until(lambda: spread(alive, paused) == [6, 6], within=30)


def test_tokens_strictly_increase_at_every_acquisition(engine: Engine) -> None:
    seen = []
    with engine.begin() as conn:
        leases.add_sites(conn, ["s"])
    for n in range(5):
        worker = f"w{n % 2}"
        with engine.begin() as conn:
            got = leases.acquire(conn, worker, ["s"], count=1, ttl_s=30)
        assert list(got) == ["s"]
        seen.append(got["s"])
        with engine.begin() as conn:
            # held: nobody else can take it, whatever they ask
            assert leases.acquire(conn, "intruder", ["s"], count=1, ttl_s=30) == {}
            leases.release(conn, worker, got)
    assert seen == sorted(set(seen)) and seen[0] == 1 and len(seen) == 5
