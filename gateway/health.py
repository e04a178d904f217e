"""The gateway's health report: broker, database, ingest, writer and the work waiting after
ingest. Filled by the runtime (``Gateway.health``), served by ``/api/health``."""

from __future__ import annotations

import time
from dataclasses import asdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from gateway.cluster.ownership import OwnershipStatus
    from gateway.ingest.mqtt import BrokerStatus
    from gateway.ingest.pipeline import IngestStats
    from gateway.storage.writer import BatchWriter


class BrokerHealth(BaseModel):
    connected: bool
    host: str = ""
    port: int = 0
    reconnects: int = 0
    last_error: str | None = None

    @classmethod
    def from_status(cls, status: BrokerStatus) -> BrokerHealth:
        return cls(
            connected=status.connected,
            host=status.host,
            port=status.port,
            reconnects=max(status.connects - 1, 0),
            last_error=status.last_error,
        )


class DatabaseHealth(BaseModel):
    ok: bool
    error: str | None = None
    latency_ms: float | None = None


class IngestHealth(BaseModel):
    messages: int = 0
    events: int = 0
    duplicates: int = 0
    rejected: dict[str, int] = Field(default_factory=dict, description="Count per reason")
    last_message_at: datetime | None = None

    @classmethod
    def from_stats(cls, stats: IngestStats) -> IngestHealth:
        return cls(
            messages=stats.messages,
            events=stats.events,
            duplicates=stats.duplicates,
            rejected=dict(stats.rejected),
            last_message_at=stats.last_message_at,
        )


WRITE_STALLED_S = 5.0  # a write waiting this long counts as the database being down


class WriterHealth(BaseModel):
    backlog: int = 0
    stored: int = 0
    duplicates: int = 0
    quarantined: int = 0
    quarantine_evicted: int = Field(0, description="Oldest rows removed past the size cap")
    batches: int = 0
    errors: int = 0
    last_commit_age_s: float | None = None
    last_batch_ms: float = 0.0
    database_down_since: datetime | None = Field(
        None,
        description="数据库不可写起始时间 / Since when the database refuses writes, or a write "
        "has waited longer than a few seconds (locked); null while it writes",
    )
    database_error: str | None = Field(None, description="The last write error of this outage")
    ingest_paused: bool = Field(
        False,
        description="暂停接收 / Nothing is acknowledged while the database is down: the broker "
        "keeps the messages (up to the receive maximum in flight) until it is back",
    )

    @classmethod
    def from_writer(cls, writer: BatchWriter, now: float | None = None) -> WriterHealth:
        stats = writer.stats
        now = time.time() if now is None else now
        age = None if stats.last_commit_at is None else max(now - stats.last_commit_at, 0.0)
        outage = writer.outage.state()
        since = outage.down_since
        started = writer.write_started
        if since is None and started is not None and now - started >= WRITE_STALLED_S:
            since = started
        down = since is not None
        return cls(
            database_down_since=None if since is None else datetime.fromtimestamp(since, UTC),
            database_error=(outage.last_error or "write not answering") if down else None,
            ingest_paused=down,
            backlog=writer.backlog,
            stored=stats.stored,
            duplicates=stats.duplicates,
            quarantined=stats.quarantined,
            quarantine_evicted=stats.quarantine_evicted,
            batches=stats.batches,
            errors=stats.errors,
            last_commit_age_s=age,
            last_batch_ms=stats.last_batch_ms,
        )


class PipelineHealth(BaseModel):
    rules_backlog: int = Field(0, description="Events received and not yet evaluated by rules")
    signals_pending: int = Field(0, description="Rule signals not yet stored as incidents")
    panic_acks_held: int = Field(
        0, description="Panic messages whose MQTT acknowledgement waits for their incident"
    )
    panics_not_stored: int = Field(
        0,
        description="未入库 / Panics told to the live channels (MQTT, console) before their "
        "incident could be stored (database down); stored when it is back",
    )


class ClusterHealth(BaseModel):
    """This worker in a cluster (docs/cluster.md); absent when cluster mode is off."""

    worker_id: str
    sites: dict[str, int] = Field(
        default_factory=dict, description="Sites this worker owns: site → fencing token"
    )
    starting: list[str] = Field(
        default_factory=list, description="Sites acquired, still being started (rule state)"
    )
    live_workers: int = Field(0, description="Live workers at the last renewal")
    lease_expires_at: datetime | None = Field(
        None, description="Earliest expiry of this worker's leases (database clock)"
    )
    last_renewal_at: datetime | None = Field(None, description="Database clock")
    renewal_ok: bool = Field(False, description="The last renewal reached the database")

    @classmethod
    def from_status(cls, status: OwnershipStatus) -> ClusterHealth:
        return cls(**asdict(status))


class HealthReport(BaseModel):
    """What ``Runtime.health()`` returns. ``database`` is filled in by the API itself (it runs
    ``SELECT 1``), and ``status`` becomes ``degraded`` when the broker or database is down."""

    status: Literal["ok", "degraded"] = "ok"
    version: str = ""
    broker: BrokerHealth
    database: DatabaseHealth = DatabaseHealth(ok=False, error="not checked")
    ingest: IngestHealth = IngestHealth()
    writer: WriterHealth = WriterHealth()
    lag_ms: float | None = Field(
        None, description="Ingest lag as measured by the runtime (message receipt to commit)"
    )
    pipeline: PipelineHealth = Field(
        default_factory=lambda: PipelineHealth(),
        description="Work waiting after ingest: rules, incident storage, held acknowledgements",
    )
    cluster: ClusterHealth | None = Field(
        None, description="This worker's share of the sites (cluster mode only)"
    )

    def with_database(self, database: DatabaseHealth, version: str) -> HealthReport:
        """The final report: the API's own database check; degraded when anything is down."""
        down = (
            not self.broker.connected
            or not database.ok
            or self.writer.database_down_since is not None
        )
        return self.model_copy(
            update={
                "database": database,
                "status": "degraded" if down or self.status == "degraded" else "ok",
                "version": self.version or version,
            }
        )
