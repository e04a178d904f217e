"""From records a device pushed over HTTP to stored events, with their pictures as evidence.

Each record is one document a device profile reads (``config/profiles``), under a topic the
receiver makes up for it (``gat1400/<device>/MotorVehicle``, ``hikvision/<device>/event``):
the same normaliser as MQTT messages (profiles, registry, duplicates, quarantine reasons), so
a pushed record and a bridged MQTT message of the same device give the same event.

Stored before acknowledged: :meth:`PushIntake.take` returns once the batch writer has
committed the events (a barrier after them in its queue, so concurrent pushes share one
commit instead of one each), and, for a panic, once its incident is stored too (the ack gate,
as for MQTT). The device is answered only then; a crash before that makes it send again, and
the redelivery is recognised by its event id.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from device_adapters.base import Adapter, DeviceInfo, Message
from gateway.config.settings import IngestConfig
from gateway.config.sites import SiteRegistry
from gateway.events import DeviceKind, Event, EventType, utcnow
from gateway.evidence.snapshot import Snapshot, SnapshotError
from gateway.evidence.store import EvidenceStore
from gateway.ingest.ack_gate import AckGate, gated
from gateway.ingest.decode import decode_payload
from gateway.ingest.pipeline import Normaliser
from gateway.ingest.reasons import Reason
from gateway.storage.writer import WriteItem

log = logging.getLogger(__name__)

JPEG_MAGIC = b"\xff\xd8\xff"


class NotStored(Exception):
    """The events were not committed (or a panic's incident not stored) in time: answer the
    device with a server error so that it sends again."""


@dataclass(frozen=True, slots=True)
class PushImage:
    """One picture of a record: its name in the push (``licensePlatePicture.jpg``, GA/T 1400
    image type ``01``), the bytes, and when it was taken if the device says so."""

    name: str
    data: bytes
    captured_at: datetime | None = None
    problem: str | None = None  # why it cannot be kept, found while reading the push

    def __repr__(self) -> str:  # keep the bytes out of logs
        return f"PushImage(name={self.name!r}, bytes={len(self.data)})"


@dataclass(slots=True)
class PushRecord:
    """One record: the topic the profiles match, the document as JSON, its pictures."""

    topic: str
    payload: bytes
    images: list[PushImage] = field(default_factory=list)


@dataclass(slots=True)
class RecordOutcome:
    """What became of one record: new events, redeliveries, or the quarantine reason."""

    events: list[Event] = field(default_factory=list)
    duplicates: int = 0
    reason: Reason | None = None
    detail: str = ""
    images: int = 0  # pictures kept as evidence

    @property
    def ok(self) -> bool:
        return self.reason is None


@dataclass
class IntakeStats:
    records: int = 0
    events: int = 0
    duplicates: int = 0
    quarantined: int = 0
    images: int = 0
    images_refused: int = 0
    not_stored: int = 0


class _Commit(threading.Event):
    """The writer's barrier (a ``threading.Event``, set on its thread once the batch holding
    it is written) that also wakes a future on the event loop: no thread waits per request."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    def set(self) -> None:
        super().set()
        self._loop.call_soon_threadsafe(_resolve, self.future)


class Reply:
    """An HTTP answer held in the ack gate until its panic's incident is stored."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    def release(self) -> None:
        self._loop.call_soon_threadsafe(_resolve, self.future)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def release_replies(tokens: list[Any]) -> None:
    """The ack gate's ``send`` for HTTP replies: let the held answers go."""
    for token in tokens:
        if isinstance(token, Reply):
            token.release()


class PushIntake:
    """Records in, stored events out, for one receiver. Runs on the event loop."""

    def __init__(
        self,
        receiver: str,
        adapters: Iterable[Adapter],
        registry: SiteRegistry,
        ingest: IngestConfig,
        *,
        publish: Callable[[list[Event]], None],
        submit: Callable[[list[WriteItem | None]], None],
        evidence: EvidenceStore | None = None,
        gate: AckGate | None = None,
        max_image_bytes: int = 2 * 1024 * 1024,
        max_images_per_record: int = 4,
        commit_timeout_s: float = 20.0,
        settle_timeout_s: float = 20.0,
        report_panic: Callable[..., Coroutine[Any, Any, Any]] | None = None,
    ) -> None:
        self.receiver = receiver
        # Gateway.report_unregistered_panic: a refused sender's panic raised all the same
        self.report_panic = report_panic
        # A normaliser of its own: its duplicate memory and caches are touched by this
        # receiver's event loop only, never by the MQTT receive thread.
        self.normaliser = Normaliser(list(adapters), registry, ingest)
        self.registry = registry
        self.ingest = ingest
        self._publish = publish
        self._submit = submit
        self.evidence = evidence
        self.gate = gate
        self.max_image_bytes = max_image_bytes
        self.max_images_per_record = max_images_per_record
        self.commit_timeout_s = commit_timeout_s
        self.settle_timeout_s = settle_timeout_s
        self.stats = IntakeStats()

    def forget_device(self, device_id: str) -> None:
        """The registry changed this device (console edits): drop cached look-ups."""
        self.normaliser.forget_device(device_id)

    # -- records to stored events ----------------------------------------------------

    async def take(self, records: list[PushRecord]) -> list[RecordOutcome]:
        """Normalise, keep pictures, publish, store; returns once stored (see module doc).
        Raises :class:`NotStored` when the commit (or a panic's incident) takes too long."""
        outcomes: list[RecordOutcome] = []
        items: list[WriteItem | None] = []
        fresh: list[Event] = []
        redelivered: list[Event] = []
        for record in records:
            self.stats.records += 1
            result = self.normaliser.process(record.topic, record.payload)
            if result.quarantined is not None:
                q = result.quarantined
                self.stats.quarantined += 1
                outcomes.append(RecordOutcome(reason=q.reason, detail=q.detail))
                items.append(WriteItem(quarantined=q))
                continue
            events = result.events
            kept = 0
            if events and record.images:
                events, kept = await self._keep_images(events, record.images)
            outcomes.append(RecordOutcome(events=events, duplicates=result.duplicates, images=kept))
            fresh.extend(events)
            redelivered.extend(result.duplicate_events)
            self.stats.events += len(events)
            self.stats.duplicates += result.duplicates
        if fresh:
            items.append(WriteItem(events=fresh))
        await self._store(items, fresh, redelivered)
        return outcomes

    async def _store(
        self, items: list[WriteItem | None], fresh: list[Event], redelivered: list[Event]
    ) -> None:
        loop = asyncio.get_running_loop()
        reply: Reply | None = None
        gate = self.gate
        if gate is not None and (ids := gated(fresh, redelivered, gate)):
            candidate = Reply(loop)
            if gate.hold(candidate, ids):  # before the bus: the rules cannot settle it first
                reply = candidate
        if fresh:
            self._publish(fresh)
        # A barrier even for redeliveries alone: their first delivery may still be queued.
        commit = _Commit(loop)
        self._submit([*items, WriteItem(barrier=commit)])
        try:
            await asyncio.wait_for(asyncio.shield(commit.future), self.commit_timeout_s)
            if reply is not None and gate is not None and reply not in gate.committed([reply]):
                await asyncio.wait_for(asyncio.shield(reply.future), self.settle_timeout_s)
        except TimeoutError:
            self.stats.not_stored += 1
            raise NotStored("not stored in time") from None

    async def _keep_images(
        self, events: list[Event], images: list[PushImage]
    ) -> tuple[list[Event], int]:
        """Store the record's pictures under its first event; that event names the first
        one in ``extra.snapshot`` (so camera evidence is not grabbed for it again)."""
        store = self.evidence
        if store is None:
            return events, 0
        first = events[0]
        kept = await asyncio.to_thread(self._save_images, store, first, images)
        if not kept:
            return events, 0
        extra = {**first.attributes.extra, "snapshot": kept[0]}
        first = first.model_copy(
            update={"attributes": first.attributes.model_copy(update={"extra": extra})}
        )
        return [first, *events[1:]], len(kept)

    def _save_images(
        self, store: EvidenceStore, event: Event, images: list[PushImage]
    ) -> list[str]:
        kept: list[str] = []
        for image in images[: self.max_images_per_record]:
            problem = self._image_problem(image)
            if problem is not None:
                self.stats.images_refused += 1
                log.warning(
                    "%s: picture %s of %s not kept: %s",
                    self.receiver, image.name[:60], event.device_id, problem,
                )  # fmt: skip
                continue
            snapshot = Snapshot(
                camera_id=event.device_id,
                captured_at=image.captured_at or event.occurred_at,
                jpeg=image.data,
                method="push",
                reason=f"{self.receiver} {image.name}"[:200],
            )
            try:
                kept.append(store.save(snapshot, ref=event.event_id).id)
            except (OSError, SnapshotError) as exc:
                self.stats.images_refused += 1
                log.warning(
                    "%s: cannot store a picture of %s: %s", self.receiver, event.device_id, exc
                )
                continue
            self.stats.images += 1
        dropped = len(images) - self.max_images_per_record
        if dropped > 0:
            self.stats.images_refused += dropped
        return kept

    def _image_problem(self, image: PushImage) -> str | None:
        if image.problem is not None:
            return image.problem
        if len(image.data) > self.max_image_bytes:
            return f"{len(image.data)} bytes > limit {self.max_image_bytes}"
        if not image.data.startswith(JPEG_MAGIC):
            return "not a JPEG"
        return None

    # -- refused pushes --------------------------------------------------------------

    def quarantine(
        self, source: str, raw: bytes, reason: Reason, detail: str, device_id: str | None
    ) -> None:
        """Keep a refused push (bounded) with its reason; counted and logged once per source
        and reason by the normaliser. Not waited for: the device is answered 4xx anyway."""
        outcome = self.normaliser.reject(source, raw, utcnow(), reason, detail, device_id)
        if outcome.quarantined is not None:
            self.stats.quarantined += 1
            self._submit([WriteItem(quarantined=outcome.quarantined)])

    def panic_like(self, record: PushRecord) -> list[Event]:
        """The panic events ``record`` would give if its sender were registered: read with
        the profiles as if the device were an unregistered alarm. Used only to decide that a
        refused push must not be dropped silently (``report_unregistered_panic``)."""
        adapter = next((a for a in self.normaliser.adapters if a.accepts(record.topic)), None)
        if adapter is None:
            return []
        received = utcnow()
        try:
            payload = decode_payload(
                record.payload,
                adapter.payload_format(record.topic),
                max_bytes=self.ingest.max_payload_bytes,
                max_depth=self.ingest.max_json_depth,
            )
            events = adapter.normalise(
                Message(record.topic, payload, record.payload, received),
                lambda _device: DeviceInfo("unregistered", DeviceKind.ALARM),
            )
        except Exception:  # undecodable, unmatched, a plug-in's bug: not a readable panic
            return []
        return [e for e in events if e.type is EventType.PANIC]
