"""The cluster's tables (migration 0011): the workers and the site leases.

A lease row is kept when released (``worker_id`` NULL): its ``token`` only ever grows, so a
fencing token is never handed out twice for a site (docs/cluster.md, "Fencing")."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Integer, String, Table

from gateway.storage.tables import UtcDateTime, metadata

workers = Table(
    "workers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("last_renewal", UtcDateTime, nullable=False),
    Column("lease_ttl_s", Float, nullable=False),
    Column("stopped_at", UtcDateTime),  # set by a graceful stop
    # The worker's batch writer when it last renewed: what `lianfang cluster status` shows.
    Column("writer_backlog", Integer),
    Column("writer_lag_ms", Float),
)

site_leases = Table(
    "site_leases",
    metadata,
    Column("site", String(64), primary_key=True),
    Column("worker_id", String(64), index=True),  # NULL: nobody's
    Column("token", BigInteger, nullable=False, default=0),
    Column("acquired_at", UtcDateTime),
    Column("expires_at", UtcDateTime),
)
