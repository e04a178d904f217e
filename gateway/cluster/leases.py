"""The lease table's statements (PostgreSQL), each one short transaction on the database's
clock: ``now()`` decides expiry, never a worker's clock (docs/cluster.md)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, text

# Workers that renewed within their own TTL and did not stop: the ones sharing the sites.
LIVE_WORKER = "stopped_at IS NULL AND last_renewal + make_interval(secs => lease_ttl_s) > now()"
FORGET_WORKERS_AFTER = "1 day"  # a stopped or dead worker's row is shown this long

_REGISTER = text("""
INSERT INTO workers (id, host, pid, started_at, last_renewal, lease_ttl_s)
VALUES (:w, :host, :pid, now(), now(), :ttl)
ON CONFLICT (id) DO UPDATE SET host = EXCLUDED.host, pid = EXCLUDED.pid,
    started_at = now(), last_renewal = now(), lease_ttl_s = EXCLUDED.lease_ttl_s,
    stopped_at = NULL
""")
_ADD_SITES = text("""
INSERT INTO site_leases (site, token) SELECT unnest(CAST(:sites AS text[])), 0
ON CONFLICT (site) DO NOTHING
""")
_HEARTBEAT = text("""
UPDATE workers SET last_renewal = now(), lease_ttl_s = :ttl, stopped_at = NULL,
    writer_backlog = :backlog, writer_lag_ms = :lag_ms
WHERE id = :w
""")
# Only leases still valid are renewed: one that expired is lost, even if nobody took it yet
# (the worker gives the site up and may acquire it again, with a new token). Rows are locked
# in site order, as the writer's fence check takes them, so the two never deadlock.
_RENEW = text("""
WITH mine AS (
    SELECT site FROM site_leases WHERE worker_id = :w AND expires_at > now()
    ORDER BY site FOR UPDATE
)
UPDATE site_leases l SET expires_at = now() + make_interval(secs => :ttl)
FROM mine WHERE l.site = mine.site
RETURNING l.site, l.token, l.expires_at
""")
_LIVE = text(f"SELECT count(*), now() FROM workers WHERE {LIVE_WORKER}")
_FORGET = text(
    f"DELETE FROM workers WHERE last_renewal < now() - interval '{FORGET_WORKERS_AFTER}'"
)
# Acquisition bumps the fencing token in the same statement that takes the lease. Rows being
# taken by another worker, or held by a writer's fence check, are skipped, not waited for.
_ACQUIRE = text("""
WITH free AS (
    SELECT site FROM site_leases
    WHERE site = ANY(CAST(:sites AS text[]))
      AND (worker_id IS NULL OR expires_at IS NULL OR expires_at <= now())
    ORDER BY md5(site || :w), site
    LIMIT :k
    FOR UPDATE SKIP LOCKED
)
UPDATE site_leases l SET worker_id = :w, token = l.token + 1, acquired_at = now(),
    expires_at = now() + make_interval(secs => :ttl)
FROM free WHERE l.site = free.site
RETURNING l.site, l.token
""")
_RELEASE = text("""
UPDATE site_leases SET worker_id = NULL, expires_at = NULL
WHERE site = :site AND worker_id = :w AND token = :token
""")
_RELEASE_ALL = text("""
WITH mine AS (SELECT site FROM site_leases WHERE worker_id = :w ORDER BY site FOR UPDATE)
UPDATE site_leases l SET worker_id = NULL, expires_at = NULL FROM mine WHERE l.site = mine.site
""")
_EARLIEST = text(
    "SELECT min(expires_at) FROM site_leases WHERE worker_id = :w AND expires_at > now()"
)
_STOPPED = text("UPDATE workers SET stopped_at = now() WHERE id = :w")


@dataclass(frozen=True)
class Renewal:
    tokens: dict[str, int]  # site → token of every lease still held, now renewed
    expires_at: datetime | None  # the earliest of their new expiry times (database clock)
    live_workers: int
    now: datetime  # the database's clock


def register(conn: Connection, worker_id: str, host: str, pid: int, ttl_s: float) -> None:
    conn.execute(_REGISTER, {"w": worker_id, "host": host, "pid": pid, "ttl": ttl_s})


def add_sites(conn: Connection, sites: Iterable[str]) -> None:
    """A lease row (nobody's, token 0) for every site not yet in the table."""
    names = sorted(set(sites))
    if names:
        conn.execute(_ADD_SITES, {"sites": names})


def renew(
    conn: Connection,
    worker_id: str,
    *,
    ttl_s: float,
    host: str,
    pid: int,
    backlog: int | None = None,
    lag_ms: float | None = None,
) -> Renewal:
    """The heartbeat and the renewal of this worker's valid leases, in one transaction."""
    beat = {"w": worker_id, "ttl": ttl_s, "backlog": backlog, "lag_ms": lag_ms}
    if conn.execute(_HEARTBEAT, beat).rowcount == 0:  # forgotten meanwhile: join again
        register(conn, worker_id, host, pid, ttl_s)
    rows = conn.execute(_RENEW, {"w": worker_id, "ttl": ttl_s}).all()
    live, now = conn.execute(_LIVE).one()
    conn.execute(_FORGET)
    return Renewal(
        tokens={site: int(token) for site, token, _ in rows},
        expires_at=min((expires for _, _, expires in rows), default=None),
        live_workers=int(live),
        now=now,
    )


def acquire(
    conn: Connection, worker_id: str, sites: Iterable[str], *, count: int, ttl_s: float
) -> dict[str, int]:
    """Take up to ``count`` of ``sites`` that nobody holds (or whose lease expired); each one
    taken gets the next fencing token. Returns site → token."""
    names = sorted(set(sites))
    if count <= 0 or not names:
        return {}
    params = {"w": worker_id, "sites": names, "k": count, "ttl": ttl_s}
    return {site: int(token) for site, token in conn.execute(_ACQUIRE, params).all()}


def earliest_expiry(conn: Connection, worker_id: str) -> datetime | None:
    """When the first of ``worker_id``'s valid leases expires (database clock)."""
    return conn.execute(_EARLIEST, {"w": worker_id}).scalar()


def release(conn: Connection, worker_id: str, leases: Mapping[str, int]) -> None:
    """Give sites back at once (only under the token this worker holds them by)."""
    for site, token in sorted(leases.items()):
        conn.execute(_RELEASE, {"site": site, "w": worker_id, "token": token})


def release_all(conn: Connection, worker_id: str) -> None:
    """A graceful stop: every lease of the worker given back, the worker marked stopped."""
    conn.execute(_RELEASE_ALL, {"w": worker_id})
    conn.execute(_STOPPED, {"w": worker_id})
