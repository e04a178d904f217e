"""Public response models, one set per resource.

These are the API's contract: storage rows and bus events are converted into them, never
returned directly. ``kind``, ``type`` and ``reason`` are plain strings in responses so that a
row written under an older vocabulary still lists instead of failing the whole page.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, computed_field

from gateway.events import Event
from rules.lateness import arrival_delay_s

if TYPE_CHECKING:
    from gateway.ingest.mqtt import BrokerStatus
    from gateway.ingest.pipeline import IngestStats
    from gateway.storage.writer import BatchWriter

T = TypeVar("T")

_PUBLIC = ConfigDict(frozen=True)


class ErrorMessage(BaseModel):
    detail: str


class Page(BaseModel, Generic[T]):
    """One page of a listing, newest first. Pass ``next_cursor`` back as ``cursor`` for the
    next page; it is null on the last page."""

    model_config = _PUBLIC
    items: list[T]
    next_cursor: str | None = None


# -- events -----------------------------------------------------------------------


class EventPublic(BaseModel):
    model_config = _PUBLIC

    seq: int | None = Field(
        None, description="Storage order (pagination key); null on live-stream events"
    )
    event_id: str
    site: str
    device_id: str
    kind: str = Field(..., description="Device kind (see DeviceKind)")
    type: str = Field(..., description="Event type (see EventType)")
    occurred_at: datetime = Field(..., description="Device time (UTC)")
    received_at: datetime = Field(..., description="Gateway time (UTC)")
    attributes: dict[str, Any] = Field(default_factory=dict)
    source: str = ""

    @computed_field(  # type: ignore[prop-decorator]
        description="received_at - occurred_at, seconds: beyond the rules' late tolerance "
        "(GET /api/rules), only panic and absence rules used the event"
    )
    @property
    def arrival_delay_s(self) -> float:
        return round(arrival_delay_s(self.occurred_at, self.received_at), 3)

    @classmethod
    def from_event(cls, event: Event) -> EventPublic:
        """The same shape as the stored row, so live and stored events look alike."""
        from gateway.storage.writer import event_row

        row = event_row(event)
        row.pop("raw")
        return cls.model_validate(row)


class EventDetail(EventPublic):
    raw: str = Field("", description="Bounded raw payload as received")


# -- devices ----------------------------------------------------------------------


class DevicePublic(BaseModel):
    model_config = _PUBLIC

    id: str
    site: str
    kind: str
    name: str = ""
    place: str | None = None
    zone: str | None = None
    household: str | None = None
    camera: str | None = None
    registered: bool = Field(..., description="Declared in the site registry (else first seen)")
    profile: str | None = Field(None, description="Profile id expected for this device")
    source: str | None = Field(
        None,
        description='"console" when added or edited in the console (kept over the site '
        "file's entry); null when from config/sites or first seen",
    )
    online: bool | None = Field(
        None, description="Last reported state: false after an offline event; null if never seen"
    )
    last_seen_at: datetime | None = None
    last_event_type: str | None = None
    battery_pct: int | None = None
    heartbeat_s: int | None = Field(None, description="Expected heartbeat period, if declared")
    overdue: bool | None = Field(
        None,
        description="Not heard from for more than twice its heartbeat period "
        "(null when no heartbeat is declared)",
    )


# -- quarantine -------------------------------------------------------------------


class QuarantinePublic(BaseModel):
    model_config = _PUBLIC

    id: int
    received_at: datetime
    topic: str
    reason: str = Field(..., description="Why the message was quarantined (see Reason)")
    detail: str
    device_id: str | None = None
    size: int = Field(..., description="Original payload size in bytes")
    raw_text: str = Field(
        ...,
        description="Stored bytes as text: UTF-8 with undecodable bytes and control "
        "characters escaped as \\xNN; bounded",
    )
    raw_base64: str = Field(..., description="Stored bytes, base64; bounded")
    raw_truncated: bool = Field(
        ..., description="True when raw_text / raw_base64 show less than the original payload"
    )


class QuarantineStats(BaseModel):
    model_config = _PUBLIC

    total: int = Field(..., description="Records stored (sampled: see received_total)")
    by_reason: dict[str, int] = Field(
        ..., description="Records stored per reason, every known reason"
    )
    received_total: int = Field(
        ...,
        description="Every quarantined message, stored or only counted (past the row rates); "
        "counted per clock minute, so `since` applies from the minute holding it",
    )
    received_by_reason: dict[str, int] = Field(
        ..., description="Every quarantined message per reason, every known reason"
    )


# -- health -----------------------------------------------------------------------


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
