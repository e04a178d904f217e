"""What the site sessions and the rule-state rebuild expect of site ownership.

The lease side (``gateway.cluster.ownership.SiteOwnership`` and ``fence.fence_ok``, built on
another branch) provides these; this Protocol names the part used here so the two can be
written apart and checked together by mypy once both are in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from sqlalchemy import Connection

AcquiredListener = Callable[[str, int], Awaitable[None]]  # (site, fencing token)
LostListener = Callable[[str], Awaitable[None]]  # site


class SiteOwnership(Protocol):
    """The sites this worker owns, each under a fencing token."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def owned(self) -> Mapping[str, int]:
        """Site → fencing token of the sites owned (live) now."""
        ...

    def on_acquired(self, cb: AcquiredListener) -> None:
        """``await cb(site, token)`` on acquisition, before the site counts as owned."""
        ...

    def on_lost(self, cb: LostListener) -> None:
        """``await cb(site)`` once the site is no longer this worker's."""
        ...


class FenceCheck(Protocol):
    """``fence_ok``: checked inside the transaction that writes for ``site``."""

    def __call__(self, conn: Connection, site: str, worker_id: str, token: int) -> bool: ...
