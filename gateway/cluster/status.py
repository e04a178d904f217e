"""What ``lianfang cluster status`` reads: workers, who owns which site, and lag per site.

Lag per site is the age of its newest stored event, ``now() − received_at`` of the event
with the latest ``occurred_at`` (read from the ``(site, occurred_at)`` index, one short index
scan per site and partition): a quiet site shows a growing age too, so read it beside its
owner's writer backlog and lag, which each worker reports with its renewal."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from gateway.cluster.leases import LIVE_WORKER

_WORKERS = text(f"""
SELECT id, host, pid, started_at, last_renewal, lease_ttl_s, stopped_at, writer_backlog,
       writer_lag_ms, ({LIVE_WORKER}) AS live
FROM workers ORDER BY id
""")
_LEASES = text("""
SELECT site, worker_id, token, acquired_at, expires_at,
       (worker_id IS NOT NULL AND expires_at > now()) AS valid
FROM site_leases ORDER BY site
""")
_NEWEST = text("""
SELECT extract(epoch FROM now() - e.received_at) FROM events e
WHERE e.site = :site ORDER BY e.occurred_at DESC LIMIT 1
""")


@dataclass
class LeaseRow:
    site: str
    worker_id: str | None  # None: nobody holds it (released, or expired)
    token: int
    acquired_at: datetime | None
    expires_at: datetime | None
    newest_event_age_s: float | None  # None: no event stored for the site


@dataclass
class WorkerRow:
    id: str
    host: str
    pid: int
    started_at: datetime
    last_renewal: datetime
    state: str  # live, stopped, expired
    writer_backlog: int | None
    writer_lag_ms: float | None
    sites: list[LeaseRow] = field(default_factory=list)


@dataclass
class ClusterStatus:
    now: datetime
    workers: list[WorkerRow]
    unowned: list[LeaseRow]

    def as_json(self) -> dict[str, Any]:
        def enc(value: Any) -> Any:
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: enc(v) for k, v in value.items()}
            if isinstance(value, list):
                return [enc(v) for v in value]
            return value

        return enc(asdict(self))  # type: ignore[no-any-return]


def read_status(conn: Connection) -> ClusterStatus:
    """The cluster as the database sees it now (its clock)."""
    now = conn.execute(text("SELECT now()")).scalar_one()
    workers = {}
    for r in conn.execute(_WORKERS).mappings():
        state = "stopped" if r["stopped_at"] is not None else "live" if r["live"] else "expired"
        workers[r["id"]] = WorkerRow(
            r["id"], r["host"], r["pid"], r["started_at"], r["last_renewal"], state,
            r["writer_backlog"], r["writer_lag_ms"],
        )  # fmt: skip
    unowned = []
    for r in conn.execute(_LEASES).mappings():
        age = conn.execute(_NEWEST, {"site": r["site"]}).scalar()
        row = LeaseRow(
            r["site"], r["worker_id"] if r["valid"] else None, int(r["token"]),
            r["acquired_at"], r["expires_at"], float(age) if age is not None else None,
        )  # fmt: skip
        owner = workers.get(row.worker_id) if row.worker_id else None
        if owner is None:
            row.worker_id = None
            unowned.append(row)
        else:
            owner.sites.append(row)
    return ClusterStatus(now, list(workers.values()), unowned)
