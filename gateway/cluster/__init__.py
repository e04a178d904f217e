"""Several gateway workers on one PostgreSQL: site leases with fencing tokens
(docs/cluster.md). ``SiteOwnership`` keeps this worker's share of the sites; ``fence_ok``
is checked in the transaction that writes for a site."""

from gateway.cluster.config import ClusterConfig
from gateway.cluster.fence import LeaseFence, fence_ok, held_leases
from gateway.cluster.ownership import OwnershipStatus, SiteOwnership

__all__ = [
    "ClusterConfig",
    "LeaseFence",
    "OwnershipStatus",
    "SiteOwnership",
    "fence_ok",
    "held_leases",
]
