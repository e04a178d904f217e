"""The ``cluster:`` section of ``lianfang.yaml`` (docs/cluster.md)."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

WORKER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class ClusterConfig(BaseModel):
    """Several ``lianfang run`` processes on one PostgreSQL and one broker, the site being the
    unit of work. Off: the single-process gateway (SQLite or PostgreSQL)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="Run as one worker of a cluster (PostgreSQL only)")
    worker_id: str | None = Field(
        None,
        description="This worker's name in the lease table (default: host-pid, new every start)",
    )
    lease_ttl_s: float = Field(
        10.0,
        ge=0.5,
        le=60.0,
        description="A site's lease lasts this long unless renewed: a dead worker's sites are "
        "taken over after at most this (keep it at 10 s or below)",
    )
    renew_every_s: float | None = Field(
        None,
        gt=0,
        description="How often a worker renews its leases and rebalances (default: TTL / 3)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ClusterConfig:
        if self.worker_id is not None and not WORKER_ID.match(self.worker_id):
            raise ValueError(
                "worker_id: letters, digits, '.', '_' and '-', at most 64, not starting with "
                "a punctuation mark"
            )
        if self.renew_every_s is not None and self.renew_every_s > self.lease_ttl_s / 2:
            raise ValueError(
                f"renew_every_s ({self.renew_every_s}) must be at most half of lease_ttl_s "
                f"({self.lease_ttl_s}): a lease must survive one late renewal"
            )
        return self

    @property
    def renew_period_s(self) -> float:
        return self.renew_every_s if self.renew_every_s is not None else self.lease_ttl_s / 3

    def resolved_worker_id(self) -> str:
        return self.worker_id or default_worker_id()


def default_worker_id() -> str:
    """``host-pid``: unique among live processes; a restarted worker is a new one."""
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:48] or "host"
    return f"{host}-{os.getpid()}"


def process_lock_file(data_dir: Path, client_id: str, cluster: ClusterConfig) -> Path:
    """The lock that keeps a second process off a data folder: the MQTT consumer's (one
    consumer per client id), or in cluster mode the worker's own, so several workers may
    share a data folder (and its keys) but not a worker id."""
    from gateway.ingest.mqtt import consumer_lock_path

    if cluster.enabled:
        return data_dir / f"cluster-worker-{cluster.resolved_worker_id()}.lock"
    return consumer_lock_path(data_dir, client_id)
