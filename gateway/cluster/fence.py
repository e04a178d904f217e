"""Fencing: a write for a site is stored only under the lease it was received under.

``fence_ok`` runs inside the transaction that writes the site's events or incidents. It locks
the lease row ``FOR SHARE``: until that transaction ends no other worker can take the lease
(acquisition updates the row), so a write that passed the check commits before any new
owner's first write. A paused worker that resumes finds its token stale or its lease expired:
the check fails, the transaction stores nothing and nothing is acknowledged.

Expiry is compared with ``clock_timestamp()`` (the database's clock at the check), not
``now()``, which is the start of a transaction that may have begun earlier.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence

from sqlalchemy import Connection, text

log = logging.getLogger(__name__)

FENCE_SQL = """
SELECT site, token FROM site_leases
WHERE site = ANY(CAST(:sites AS text[])) AND worker_id = :w AND expires_at > clock_timestamp()
ORDER BY site
FOR SHARE
"""
_FENCE = text(FENCE_SQL)


def held_leases(conn: Connection, worker_id: str, sites: Iterable[str]) -> dict[str, int]:
    """Site → token of the ``sites`` whose lease ``worker_id`` holds and has not expired,
    locked until the end of ``conn``'s transaction. One statement for a whole batch."""
    names = sorted(set(sites))
    if not names:
        return {}
    rows = conn.execute(_FENCE, {"sites": names, "w": worker_id}).all()
    return {site: int(token) for site, token in rows}


def fence_ok(conn: Connection, site: str, worker_id: str, token: int) -> bool:
    """True when ``worker_id`` holds ``site``'s lease under ``token`` and it has not expired;
    call it inside the transaction that writes for the site, and roll back when it is False."""
    return held_leases(conn, worker_id, [site]).get(site) == token


class LeaseFence:
    """The batch writer's fence (``BatchWriter.fence``) in cluster mode.

    ``stamp`` (submitting thread) records the token each of an item's sites is owned under
    right now; ``refused`` (writer thread, inside the write transaction) names the sites of a
    batch whose lease is no longer that one. Sites this worker does not own are not stamped,
    so not fenced: a push receiver's event heard here is stored here (redeliveries are
    stored once whatever the worker: ``event_keys``)."""

    def __init__(self, worker_id: str, owned: Callable[[], Mapping[str, int]]) -> None:
        self.worker_id = worker_id
        self._owned = owned
        self._logged: set[tuple[str, int]] = set()
        self._lock = threading.Lock()

    def stamp(self, sites: Sequence[str]) -> dict[str, int] | None:
        owned = self._owned()
        leases = {s: owned[s] for s in sites if s in owned}
        return leases or None

    def refused(self, conn: Connection, stamps: Sequence[Mapping[str, int] | None]) -> list[bool]:
        """For each item's stamp (site → token, or None: not fenced), whether it must not be
        written: one of its sites' lease lost or taken again since it was received."""
        sites = {site for stamp in stamps if stamp for site in stamp}
        held = held_leases(conn, self.worker_id, sites) if sites else {}
        out = []
        for stamp in stamps:
            lost = [(s, t) for s, t in (stamp or {}).items() if held.get(s) != t]
            for site, token in lost:
                self._log_once(site, token)
            out.append(bool(lost))
        return out

    def _log_once(self, site: str, token: int) -> None:
        with self._lock:
            if (site, token) in self._logged:
                return
            self._logged.add((site, token))
        log.warning(
            "site %s: lease (token %d) lost by worker %s; its events are neither stored nor "
            "acknowledged here (the broker keeps them for the new owner)",
            site, token, self.worker_id,
        )  # fmt: skip
