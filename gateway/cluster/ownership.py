"""Which sites this worker owns: an asyncio task that keeps its leases and its fair share.

Every ``renew_every_s`` the worker, in short transactions on the database's clock
(gateway.cluster.leases):

1. beats (``workers.last_renewal``) and renews every lease it still validly holds; a lease
   that expired meanwhile (a paused process, a network split) is lost, whoever holds it now;
2. counts the live workers and takes its fair share, ``ceil(sites / live workers)``: above
   it, the surplus is released at once (the listeners hear ``lost`` first); below it, free or
   expired leases are acquired, each with the next fencing token.

An acquired site counts as owned (``owned()``) only once every ``on_acquired`` listener has
returned: the rule-state rebuild and the site's MQTT session start there. A worker that
cannot renew within the TTL (its own monotonic clock, from the moment the renewal was sent)
gives every site up locally; the database's ``expires_at`` has already let others take them,
and the writer's fence refuses whatever it still tries to store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from gateway.cluster import leases
from gateway.cluster.config import ClusterConfig

log = logging.getLogger(__name__)

AcquiredListener = Callable[[str, int], Awaitable[None]]
LostListener = Callable[[str], Awaitable[None]]
WriterLoad = Callable[[], tuple[int, float]]  # (backlog, lag in ms) of this worker's writer


@dataclass(frozen=True)
class OwnershipStatus:
    """What /api/health shows of this worker."""

    worker_id: str
    sites: dict[str, int]  # owned (live): site → fencing token
    starting: list[str]  # acquired, listeners still running
    live_workers: int
    lease_expires_at: datetime | None  # earliest expiry of the held leases (database clock)
    last_renewal_at: datetime | None  # database clock
    renewal_ok: bool  # the last renewal reached the database


class SiteOwnership:
    """Keeps this worker's site leases. ``start``/``stop`` on the gateway's event loop."""

    def __init__(
        self,
        engine: Engine,
        sites: Iterable[str],
        *,
        worker_id: str,
        lease_ttl_s: float = 10.0,
        renew_every_s: float | None = None,
        writer_load: WriterLoad | None = None,
    ) -> None:
        if engine.dialect.name != "postgresql":
            raise ValueError("cluster mode needs PostgreSQL")
        self.engine = engine
        self.worker_id = worker_id
        self.lease_ttl_s = lease_ttl_s
        self.renew_every_s = renew_every_s if renew_every_s is not None else lease_ttl_s / 3
        self.writer_load = writer_load
        self._sites = sorted(set(sites))
        self._host = socket.gethostname()[:255]
        # Replaced, never changed in place: the writer's thread reads it (LeaseFence.stamp).
        self._owned: dict[str, int] = {}
        self._starting: dict[str, tuple[int, asyncio.Task[None]]] = {}
        self._acquired: list[AcquiredListener] = []
        self._lost: list[LostListener] = []
        self._task: asyncio.Task[None] | None = None
        self._valid_until = 0.0  # monotonic: our leases cannot have expired before this
        self._renewal: leases.Renewal | None = None
        self._renewal_ok = False
        self._expires_at: datetime | None = None  # earliest expiry of the held leases

    @classmethod
    def from_config(
        cls,
        engine: Engine,
        sites: Iterable[str],
        config: ClusterConfig,
        *,
        writer_load: WriterLoad | None = None,
    ) -> SiteOwnership:
        return cls(
            engine,
            sites,
            worker_id=config.resolved_worker_id(),
            lease_ttl_s=config.lease_ttl_s,
            renew_every_s=config.renew_period_s,
            writer_load=writer_load,
        )

    # -- the interface ---------------------------------------------------------------------
    def on_acquired(self, cb: AcquiredListener) -> None:
        """``await cb(site, token)`` when a site is acquired, before it counts as owned. An
        exception gives the site back (it is released, and may be acquired again later)."""
        self._acquired.append(cb)

    def on_lost(self, cb: LostListener) -> None:
        """``await cb(site)`` when a site is no longer this worker's: released to even the
        spread, given up at stop, or found expired (then someone else may own it already)."""
        self._lost.append(cb)

    def owned(self) -> Mapping[str, int]:
        """Site → fencing token of the sites this worker owns now (thread-safe snapshot)."""
        return self._owned

    def status(self) -> OwnershipStatus:
        renewal = self._renewal
        return OwnershipStatus(
            worker_id=self.worker_id,
            sites=dict(self._owned),
            starting=sorted(self._starting),
            live_workers=renewal.live_workers if renewal else 0,
            lease_expires_at=self._expires_at,
            last_renewal_at=renewal.now if renewal else None,
            renewal_ok=self._renewal_ok,
        )

    async def start(self) -> None:
        """Join the cluster and take a first share (its listeners run in the background)."""
        await asyncio.to_thread(self._join)
        await self._tick()
        self._task = asyncio.create_task(self._run(), name=f"site-ownership-{self.worker_id}")

    async def stop(self) -> None:
        """Leave the cluster: every site's listeners hear ``lost``, then every lease is
        released at once (the others take them at their next renewal, not after a TTL)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for site in sorted({*self._owned, *self._starting}):
            await self._drop(site)
        try:
            await asyncio.to_thread(self._leave)
        except Exception as exc:  # the leases expire after their TTL instead
            log.warning("cluster: could not release the leases at stop: %s", exc)

    # -- the loop ----------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.renew_every_s)
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._renewal_ok = False
                log.warning("cluster: lease renewal failed: %s", exc.__class__.__name__)
            if time.monotonic() >= self._valid_until and (self._owned or self._starting):
                log.error(
                    "cluster: leases not renewed within %.1fs: giving up %d sites",
                    self.lease_ttl_s, len(self._owned) + len(self._starting),
                )  # fmt: skip
                for site in sorted({*self._owned, *self._starting}):
                    await self._drop(site)

    async def _tick(self) -> None:
        sent = time.monotonic()
        # A renewal stuck longer than the TTL is worthless: stop waiting for it.
        renewal = await asyncio.wait_for(asyncio.to_thread(self._renew), self.lease_ttl_s)
        self._renewal, self._renewal_ok = renewal, True
        self._expires_at = renewal.expires_at
        self._valid_until = sent + self.lease_ttl_s
        held = renewal.tokens
        mine = {**self._owned, **{s: t for s, (t, _) in self._starting.items()}}
        for site, token in sorted(mine.items()):
            if held.get(site) != token:
                log.warning("cluster: lease of site %s (token %d) expired: lost", site, token)
                await self._drop(site)
        # Held in the database but not here (a renewal that arrived after we gave up): give
        # them back, to be acquired again with a new token and a fresh start.
        strays = {s: t for s, t in held.items() if mine.get(s) != t}
        if strays:
            await asyncio.to_thread(self._release, strays)
        share = math.ceil(len(self._sites) / max(renewal.live_workers, 1))
        have = sorted({*self._owned, *self._starting})
        if len(have) > share:
            await self._release_surplus(have[share:])
        elif len(have) < share:
            taken = await asyncio.to_thread(self._acquire, share - len(have))
            for site, token in sorted(taken.items()):
                log.info("cluster: acquired site %s (token %d)", site, token)
                task = asyncio.create_task(self._activate(site, token), name=f"acquire-{site}")
                self._starting[site] = (token, task)

    async def _activate(self, site: str, token: int) -> None:
        try:
            for cb in self._acquired:
                await cb(site, token)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("cluster: starting site %s failed; giving it back", site)
            self._starting.pop(site, None)
            await self._notify_lost(site)
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._release, {site: token})
            return
        if self._starting.get(site, (None,))[0] == token:
            del self._starting[site]
            self._owned = {**self._owned, site: token}

    async def _release_surplus(self, sites: list[str]) -> None:
        tokens = {}
        for site in sites:
            token = self._token_of(site)
            await self._drop(site)
            if token is not None:
                tokens[site] = token
        await asyncio.to_thread(self._release, tokens)
        log.info("cluster: released %s to even the spread", ", ".join(sites))

    def _token_of(self, site: str) -> int | None:
        if site in self._owned:
            return self._owned[site]
        starting = self._starting.get(site)
        return starting[0] if starting else None

    async def _drop(self, site: str) -> None:
        """No longer ours, locally: out of ``owned()`` first, then the listeners."""
        starting = self._starting.pop(site, None)
        if starting is not None:
            starting[1].cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await starting[1]
        elif site not in self._owned:
            return
        if site in self._owned:
            self._owned = {s: t for s, t in self._owned.items() if s != site}
        await self._notify_lost(site)

    async def _notify_lost(self, site: str) -> None:
        for cb in self._lost:
            try:
                await cb(site)
            except Exception:
                log.exception("cluster: a listener failed on losing site %s", site)

    # -- database (worker threads) -----------------------------------------------------------
    def _join(self) -> None:
        with self.engine.begin() as conn:
            leases.register(conn, self.worker_id, self._host, os.getpid(), self.lease_ttl_s)
            leases.add_sites(conn, self._sites)
        log.info(
            "cluster: worker %s joined (%d sites configured, lease %.1fs, renewed every %.1fs)",
            self.worker_id, len(self._sites), self.lease_ttl_s, self.renew_every_s,
        )  # fmt: skip

    def _renew(self) -> leases.Renewal:
        backlog, lag_ms = self.writer_load() if self.writer_load is not None else (None, None)
        with self.engine.begin() as conn:
            return leases.renew(
                conn, self.worker_id, ttl_s=self.lease_ttl_s, host=self._host, pid=os.getpid(),
                backlog=backlog, lag_ms=lag_ms,
            )  # fmt: skip

    def _acquire(self, count: int) -> dict[str, int]:
        with self.engine.begin() as conn:
            taken = leases.acquire(
                conn, self.worker_id, self._sites, count=count, ttl_s=self.lease_ttl_s
            )
            if taken:
                self._expires_at = leases.earliest_expiry(conn, self.worker_id)
            return taken

    def _release(self, tokens: Mapping[str, int]) -> None:
        if tokens:
            with self.engine.begin() as conn:
                leases.release(conn, self.worker_id, tokens)

    def _leave(self) -> None:
        with self.engine.begin() as conn:
            leases.release_all(conn, self.worker_id)
