"""Run every configured camera: connect, subscribe, pull, renew, recover — one task each.

A camera that fails (wrong password, offline, malformed or hostile SOAP) changes its own
health state and retries with backoff; the others are not affected.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from device_adapters.onvif.client import OnvifClient
from device_adapters.onvif.config import CameraConfig
from device_adapters.onvif.health import (
    REASON_FOR_STATE,
    CameraStatus,
    HealthReason,
    HealthState,
    SubscriptionLost,
    classify,
)
from device_adapters.onvif.pullpoint import PullPoint
from device_adapters.onvif.topics import SOURCE, Notification, Outcome, normalise
from gateway.config.errors import ConfigErrors
from gateway.events import DeviceKind, Event, EventType, utcnow
from gateway.ingest.pipeline import QuarantineRecord
from gateway.ingest.reasons import Reason

log = logging.getLogger(__name__)

EmitEvents = Callable[[list[Event]], None]
EmitQuarantine = Callable[[QuarantineRecord], None]
QUARANTINE_RAW_BYTES = 4096
UNKNOWN_LOGGED_MAX = 1000  # (camera, topic) pairs remembered for log-once


class CameraWorker:
    """One camera's loop. Use through :class:`OnvifCameraManager`."""

    def __init__(
        self,
        config: CameraConfig,
        emit_events: EmitEvents,
        emit_quarantine: EmitQuarantine,
        clock: Callable[[], datetime],
        zone: str | None = None,
    ) -> None:
        self.config = config
        self.emit_events = emit_events
        self.emit_quarantine = emit_quarantine
        self.clock = clock
        self.zone = zone
        self.status = CameraStatus(config.id)
        self._reported_online = False  # last health event sent was `online`
        self._reported_any = False
        self._logged_unknown: set[str] = set()
        self._offset = timedelta(0)
        self._pullpoint: PullPoint | None = None

    # -- health --------------------------------------------------------------------------

    def _health_event(self, etype: EventType, reason: HealthReason, detail: str) -> Event:
        now = self.clock()
        basis = f"{self.config.id}|{etype}|{reason}|{now.isoformat()}"
        extra: dict[str, str | int | float | bool | None] = {"reason": reason.value}
        if detail:
            extra["error"] = detail[:200]
        if self.status.clock_offset_s is not None:
            extra["clock_offset_s"] = self.status.clock_offset_s
        return Event(
            event_id="onvif-health-" + hashlib.sha256(basis.encode()).hexdigest()[:32],
            occurred_at=now,
            received_at=now,
            site=self.config.site,
            device_id=self.config.id,
            kind=DeviceKind(self.config.kind),
            type=etype,
            attributes={"extra": extra, "zone": self.zone},
            source=SOURCE,
        )

    def _online(self, reason: HealthReason) -> None:
        self.status.state = HealthState.ONLINE
        self.status.online_since = self.clock()
        self.status.last_error = None
        if not self._reported_online:
            self._reported_online = self._reported_any = True
            log.info("camera %s online (%s)", self.config.id, reason.value)
            self._emit([self._health_event(EventType.ONLINE, reason, "")])

    def _offline(self, state: HealthState, reason: HealthReason, detail: str) -> None:
        changed = self.status.state != state or self.status.last_error != detail
        self.status.state = state
        self.status.last_error = detail
        self.status.last_error_at = self.clock()
        self.status.online_since = None
        if changed:
            log.warning("camera %s %s: %s", self.config.id, state.value, detail)
        if self._reported_online or not self._reported_any:
            self._reported_online = False
            self._reported_any = True
            self._emit([self._health_event(EventType.OFFLINE, reason, detail)])

    def _emit(self, events: list[Event]) -> None:
        try:
            self.emit_events(events)
        except Exception:  # a sink's bug must not stop the camera
            log.exception("event sink failed for camera %s", self.config.id)

    # -- loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        delay = self.config.retry_min_s
        resubscribe = False
        while True:
            client: OnvifClient | None = None
            try:
                client = OnvifClient(self.config, self.config.password())
                await client.connect()
                self._offset = client.clock_offset
                info = client.device_info
                self.status.clock_offset_s = round(self._offset.total_seconds(), 3)
                self.status.manufacturer = getattr(info, "Manufacturer", None)
                self.status.model = getattr(info, "Model", None)
                self.status.firmware = getattr(info, "FirmwareVersion", None)
                pullpoint = PullPoint(client.camera, self.config)
                self._pullpoint = pullpoint
                await pullpoint.create()
                self.status.subscriptions += 1
                self._online(HealthReason.RESUBSCRIBED if resubscribe else HealthReason.CONNECTED)
                delay = self.config.retry_min_s
                await self._pull_loop(client, pullpoint)
            except asyncio.CancelledError:
                raise
            except SubscriptionLost as lost:
                self._offline(HealthState.RESUBSCRIBING, lost.reason, lost.detail)
                resubscribe = True
                delay = self.config.retry_min_s
            except ConfigErrors as exc:
                self._offline(HealthState.AUTH_FAILED, HealthReason.AUTH_FAILED, str(exc))
                delay = self.config.retry_max_s
            except Exception as exc:
                state, detail = classify(exc)
                self._offline(
                    state, REASON_FOR_STATE.get(state, HealthReason.PROTOCOL_ERROR), detail
                )
                resubscribe = False
                if state is HealthState.AUTH_FAILED:
                    delay = max(delay, self.config.retry_max_s / 4)
            finally:
                self._pullpoint = None
                self.status.subscription_expires_at = None
                if client is not None:
                    self.status.addresses_rewritten += len(client.camera.rewritten)
                    await asyncio.shield(self._close(client))
            if resubscribe and self.status.state is HealthState.RESUBSCRIBING:
                await asyncio.sleep(min(delay, 1.0))
            else:
                await asyncio.sleep(delay)
            delay = min(delay * 2, self.config.retry_max_s)

    async def _close(self, client: OnvifClient) -> None:
        pullpoint = self._pullpoint
        if pullpoint is not None:
            await pullpoint.close()
        await client.close()

    async def _pull_loop(self, client: OnvifClient, pullpoint: PullPoint) -> None:
        while True:
            if await pullpoint.renew_if_due():
                self.status.renewals += 1
            left = pullpoint.seconds_left()
            if left is not None:
                self.status.subscription_expires_at = self.clock() + timedelta(seconds=left)
            messages = await pullpoint.pull()
            if messages:
                await self._handle(messages)

    async def _handle(self, messages: list[object]) -> None:
        received_at = self.clock()
        events: list[Event] = []
        for msg in messages:
            try:
                note = Notification.from_zeep(msg)
            except ValueError as exc:
                self._quarantine(None, Reason.INVALID_EVENT, str(exc), received_at)
                continue
            result = await normalise(
                note, camera_id=self.config.id, site=self.config.site,
                offset=self._offset, received_at=received_at, zone=self.zone,
            )  # fmt: skip
            if result.outcome is Outcome.EVENT:
                events.extend(result.events)
            elif result.outcome is Outcome.IGNORED:
                self.status.ignored += 1
            elif result.outcome is Outcome.UNKNOWN:
                self.status.unknown_topics += 1
                self._log_unknown(note)
                self._quarantine(note, Reason.NO_MATCH, result.detail, received_at)
            elif result.outcome is Outcome.INVALID:
                self._quarantine(note, Reason.INVALID_EVENT, result.detail, received_at)
        if events:
            self.status.events += len(events)
            self.status.last_event_at = received_at
            self._emit(events)

    def _log_unknown(self, note: Notification) -> None:
        if note.topic in self._logged_unknown:
            return
        if len(self._logged_unknown) >= UNKNOWN_LOGGED_MAX:
            self._logged_unknown.clear()
        self._logged_unknown.add(note.topic)
        self.status.recent_unknown = [*self.status.recent_unknown[-9:], note.topic]
        # One line, pastes into tests/onvif_fixtures/<vendor>.json (personal items redacted).
        log.warning(
            "camera %s sent unknown ONVIF topic %s (kept in quarantine, logged once). "
            "Fixture: %s", self.config.id, note.topic, note.fixture_json(),
        )  # fmt: skip

    def _quarantine(
        self, note: Notification | None, reason: Reason, detail: str, received_at: datetime
    ) -> None:
        raw = (note.fixture_json() if note is not None else "").encode()
        topic = f"onvif/{self.config.id}/{note.topic if note else '?'}"
        record = QuarantineRecord(
            received_at, topic[:512], reason, detail[:1000], self.config.id,
            raw[:QUARANTINE_RAW_BYTES], len(raw),
        )  # fmt: skip
        try:
            self.emit_quarantine(record)
        except Exception:
            log.exception("quarantine sink failed for camera %s", self.config.id)


class OnvifCameraManager:
    """All cameras. ``start``/``stop`` on the gateway's event loop; ``status()`` any time.

    ``emit_events`` and ``emit_quarantine`` are called on the event loop, never concurrently
    for one camera. ``zones`` optionally names each camera's zone (from the site registry).
    """

    def __init__(
        self,
        cameras: Sequence[CameraConfig],
        emit_events: EmitEvents,
        emit_quarantine: EmitQuarantine,
        clock: Callable[[], datetime] = utcnow,
        zones: dict[str, str | None] | None = None,
    ) -> None:
        zones = zones or {}
        self.workers = {
            cam.id: CameraWorker(cam, emit_events, emit_quarantine, clock, zones.get(cam.id))
            for cam in cameras
            if cam.enabled
        }
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        for cid, worker in self.workers.items():
            if cid not in self._tasks:
                self._tasks[cid] = asyncio.create_task(worker.run(), name=f"onvif-{cid}")
                self._tasks[cid].add_done_callback(self._crashed)

    def _crashed(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("ONVIF camera task %s died", task.get_name(), exc_info=task.exception())

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for worker in self.workers.values():
            worker.status.state = HealthState.STOPPED

    def status(self) -> dict[str, CameraStatus]:
        """A copy of each camera's status, keyed by camera id."""
        return {cid: replace(w.status) for cid, w in self.workers.items()}
