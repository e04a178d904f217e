"""IncidentService: signals, reports and workflow actions in; incidents, timeline and
outbox rows out. A small facade over one module per job:

==================  =====================================================================
``opening``         a new rule signal: redelivery, join its group (``grouping``) or open
``updates``         later updates of a signal (resolved, cancelled)
``reports``         manual reports and residents' 随手报
``actions``         workflow actions and attached photos (the stage machine: ``lifecycle``)
``acknowledgement`` a recipient's acknowledgement of its notifications
``taking``          the incident acknowledged (确认接警): its escalation ladder stops
``escalation``      acknowledgement deadlines that passed
``outbox``          notifications queued with each change; ``timeline`` its entries
==================  =====================================================================

It is the rules engine's ``SignalSink``. The alarm path for a new signal:

1. locate it on the grid and plan the deliveries (in memory, no query);
2. in the service's own writer thread, one small transaction: group into an open incident
   or insert a new one, its timeline entries and one outbox row per (recipient, channel);
   commit — the notification is stored before it is sent;
3. hand the rows to the dispatcher, which sends each in its own task.

Every write goes through one worker thread (``run_db``), so grouping (look for an open
incident, else insert) never races within a gateway and the event batch writer is never
waited for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from gateway.events import utcnow
from gateway.grid.directory import GridDirectory
from gateway.incidents import (
    acknowledgement,
    actions,
    attachments,
    escalation,
    opening,
    reports,
    taking,
    updates,
)
from gateway.incidents.acknowledgement import RecipientAck
from gateway.incidents.lifecycle import Action, Stage
from gateway.incidents.records import (
    AckOutcome,
    AckResult,
    Acted,
    ActionInput,
    IncidentAck,
    IncidentNotFound,
    Report,
    ServiceStats,
    Written,
)
from gateway.incidents.signal_queue import Queued, SignalQueue
from gateway.incidents.unstored import UnstoredAlerts, live_messages
from gateway.notify.base import Message, Notifier
from gateway.notify.console import NotificationHub
from gateway.notify.dispatcher import Dispatcher
from gateway.routing.model import RoutingConfig
from gateway.storage.outage import outage_for
from gateway.storage.write_lane import lane_for
from rules.model import Severity
from rules.signal import Signal

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], datetime]

__all__ = [
    "AckOutcome",
    "AckResult",
    "Acted",
    "ActionInput",
    "IncidentAck",
    "IncidentNotFound",
    "IncidentService",
    "Report",
    "ServiceStats",
]


class IncidentService:
    def __init__(
        self,
        engine: Engine,
        routing: RoutingConfig,
        grid: GridDirectory,
        *,
        clock: Clock = utcnow,
        hub: NotificationHub | None = None,
    ) -> None:
        self.engine = engine
        self.routing = routing
        self.grid = grid
        self.clock = clock
        self.hub = hub or NotificationHub()
        self.stats = ServiceStats()
        self.dispatcher: Dispatcher | None = None
        # Called (on the loop) when a signal opens a new incident: (incident id, device, reason).
        # The gateway uses it to grab camera evidence; it must return at once.
        self.on_opened: Callable[[int, str, str], None] | None = None
        # Called (on the loop) once a signal is stored, or found stored already: the gateway
        # releases the MQTT acknowledgement of the panic it carries (gateway.ingest.ack_gate).
        self.on_stored: Callable[[Signal], None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="lianfang-incidents")
        self.lane = lane_for(engine)
        outage = outage_for(engine)
        self.signals = SignalQueue(self._store_open, self._store_update_batch, outage=outage)
        # A panic not stored within moments (database down) is told live at once, 未入库.
        self.unstored = UnstoredAlerts(outage, self._announce_unstored)
        self._live: set[asyncio.Task[Any]] = set()

    async def aclose(self, within_s: float = 10.0) -> None:
        """Store the queued signals (up to ``within_s``), then stop the database thread."""
        await self.signals.close(within_s)
        self.close()

    def close(self) -> None:
        self._executor.shutdown(wait=True)

    async def run_db(self, fn: Callable[..., T], /, *args: Any) -> T:
        """Run ``fn(*args)`` in the incident writer thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, lambda: fn(*args))

    async def _write(self, job: Callable[..., T], /, **kwargs: Any) -> T:
        """Run ``job(conn, **kwargs)`` in one transaction in the writer thread."""

        def run() -> T:
            # The urgent write lane: before the event batch writer's next transaction
            # (gateway.storage.write_lane), held for this transaction only.
            with self.lane.urgent(), self.engine.begin() as conn:
                return job(conn, **kwargs)

        return await self.run_db(run)

    def _hand_over(self, written: Written) -> None:
        """Send what a write queued and tell live consoles the incident changed."""
        if self.dispatcher is not None and (written.rows or written.deadlines):
            self.dispatcher.submit(written.rows, written.deadlines)
        if written.incident_id is not None:
            self.hub.publish(
                {
                    "type": "incident",
                    "incident_id": written.incident_id,
                    "created": written.created,
                },
                place=written.place,
            )

    # -- SignalSink --------------------------------------------------------------------------
    async def emit(self, signal: Signal) -> None:
        """Queue the signal and return at once: the rules loop never waits for the database
        (see ``signal_queue``). ``settled()`` waits until it is stored."""
        self.stats.signals += 1
        if signal.kind != "update" and signal.severity is Severity.P1:
            self.unstored.watch(signal)
        self.signals.put(signal, self.clock())

    async def settled(self, within_s: float | None = None) -> bool:
        """Wait until every signal emitted so far is stored; False on timeout."""
        return await self.signals.settled(within_s)

    async def _store_open(self, item: Queued) -> None:
        signal = item.signal
        loc, deliveries = opening.plan_signal(signal, self.routing, self.grid)
        written = await self._write(
            opening.store_signal,
            signal=signal,
            loc=loc,
            deliveries=deliveries,
            routing=self.routing,
            now=item.at,
        )
        self.unstored.stored(signal.signal_id)
        self.stats.count(written.stored)
        self._hand_over(written)
        if self.on_stored is not None:
            self.on_stored(signal)
        if (
            self.on_opened is not None
            and written.created
            and written.incident_id is not None
            and signal.device_id
        ):
            self.on_opened(written.incident_id, signal.device_id, signal.rule_id)

    def _announce_unstored(self, signal: Signal) -> None:
        """Tell the live channels of ``signal`` now, marked not stored (``unstored``)."""
        loc, deliveries = opening.plan_signal(signal, self.routing, self.grid)
        notifiers = self.dispatcher.notifiers if self.dispatcher is not None else {}
        for message in live_messages(signal, loc, deliveries, self.clock()):
            notifier = notifiers.get(message.channel)
            if notifier is None:
                continue
            task = asyncio.create_task(self._send_live(notifier, message))
            self._live.add(task)
            task.add_done_callback(self._live.discard)

    @staticmethod
    async def _send_live(notifier: Notifier, message: Message) -> None:
        result = await notifier.send(message)
        if not result.ok:
            log.warning(
                "live alert to %s via %s not sent: %s",
                message.recipient,
                message.channel,
                result.error,
            )

    async def _store_update_batch(self, items: list[Queued]) -> None:
        """All queued updates in one transaction; if that fails for a reason other than a
        busy database, each on its own, so one bad update does not sink the others."""
        try:
            stored = list(zip(items, await self.run_db(self._store_updates, items), strict=True))
        except Exception as exc:
            if len(items) == 1 or isinstance(exc, OperationalError):
                raise
            log.warning("incident updates: batch of %d failed (%r); one by one", len(items), exc)
            stored = []
            for item in items:
                try:
                    stored += [(item, w) for w in await self.run_db(self._store_updates, [item])]
                except OperationalError:
                    raise
                except Exception:
                    self.stats.errors += 1
                    log.exception("incident update for signal %s failed", item.signal.signal_id)
        for item, written in stored:
            self.stats.count(written.stored)
            self._hand_over(written)
            if self.on_stored is not None:
                self.on_stored(item.signal)

    def _store_updates(self, items: list[Queued]) -> list[Written]:
        """In the writer thread: one transaction for ``items`` (``updates``)."""
        with self.lane.urgent(), self.engine.begin() as conn:
            return updates.store_updates(conn, items=items, routing=self.routing, grid=self.grid)

    # -- reports and actions ---------------------------------------------------------------
    async def report(self, report: Report) -> int:
        loc, deliveries = reports.plan_report(report, self.routing, self.grid)
        written = await self._write(
            reports.store_report,
            report=report,
            loc=loc,
            deliveries=deliveries,
            routing=self.routing,
            now=self.clock(),
        )
        self._hand_over(written)
        assert written.incident_id is not None
        return written.incident_id

    async def act(self, incident_id: int, request: ActionInput) -> Stage:
        """Apply a workflow action; raises ``IncidentNotFound`` or ``IllegalTransition``."""
        return (await self.apply(incident_id, request)).stage

    async def apply(self, incident_id: int, request: ActionInput) -> Acted:
        """``act``, saying also whether the incident is acknowledged and, for
        ``acknowledge``, whether this one was recorded or a repeat."""
        if request.action is Action.ACKNOWLEDGE:
            ack = await self.acknowledge_incident(incident_id, request)
            return Acted(ack.stage, acknowledged=True, acknowledgement=ack)
        written = await self._write(
            actions.store_action,
            incident_id=incident_id,
            request=request,
            routing=self.routing,
            grid=self.grid,
            now=self.clock(),
        )
        self._hand_over(written)
        assert written.stage is not None
        return Acted(written.stage, acknowledged=written.acknowledged)

    async def acknowledge_incident(self, incident_id: int, request: ActionInput) -> IncidentAck:
        """确认接警: take the incident, which stops its escalation ladder (``taking``); a
        repeat records nothing and says by whom it was taken. ``IncidentNotFound``."""
        result, written = await self._write(
            taking.acknowledge_incident,
            incident_id=incident_id,
            request=request,
            routing=self.routing,
            grid=self.grid,
            now=self.clock(),
        )
        if written.incident_id is not None:
            self._hand_over(written)
        return result

    async def acknowledge(self, notification_id: int, actor: str) -> bool:
        """``acknowledge_notification``; False when there is no such notification."""
        result = await self.acknowledge_notification(notification_id, actor)
        return result.outcome is not AckOutcome.NOT_FOUND

    async def acknowledge_notification(self, notification_id: int, actor: str) -> AckResult:
        """A recipient's notification acknowledged (all its channels) by ``actor`` on its
        behalf; a repeat is ``DUPLICATE`` and records nothing."""
        result, written = await self._write(
            acknowledgement.store_ack,
            notification_id=notification_id,
            actor=actor,
            routing=self.routing,
            grid=self.grid,
            now=self.clock(),
        )
        if written.incident_id is not None:
            self._hand_over(written)
        return result

    async def acknowledge_as(
        self,
        recipient_kind: str,
        recipient_id: str,
        *,
        notification_id: int | None = None,
        incident_id: int | None = None,
        actor: str,
        by: str = "",
        note: str = "",
        via: str = "mqtt",
    ) -> AckResult:
        """An acknowledgement that arrived *as* a recipient (its own MQTT ack topic): the
        notification (or the incident) must have been addressed to that recipient. Recorded
        like ``acknowledge``; a repeat (every row of that recipient already acknowledged)
        records nothing more, so a redelivered message is harmless."""
        result, written = await self._write(
            acknowledgement.store_recipient_ack,
            ack=RecipientAck(
                recipient_kind=recipient_kind,
                recipient_id=recipient_id,
                notification_id=notification_id,
                incident_id=incident_id,
                actor=actor,
                by=by,
                note=note,
                via=via,
            ),
            routing=self.routing,
            grid=self.grid,
            now=self.clock(),
        )
        if written.incident_id is not None:
            self._hand_over(written)
        return result

    async def attach(
        self,
        incident_id: int,
        data: bytes,
        *,
        filename: str,
        actor: str,
        role: str = "",
        note: str = "",
        data_dir: Path,
    ) -> dict[str, Any]:
        """Store an image (type by magic bytes) and record it on the timeline."""
        kind = attachments.detect_type(data)
        if kind is None:
            raise attachments.BadAttachment("only JPEG, PNG or WebP images are accepted")
        if not await self._write(actions.incident_exists, incident_id=incident_id):
            raise IncidentNotFound(incident_id)
        meta = await asyncio.to_thread(attachments.write, data_dir, incident_id, data, kind)
        row = {
            **meta,
            "incident_id": incident_id,
            "filename": attachments.clean_name(filename),
            "uploaded_at": self.clock(),
            "uploaded_by": actor,
        }
        await self._write(actions.store_attachment, row=row, role=role, note=note)
        return row

    async def escalate(self, notification_ids: list[int]) -> None:
        """Acknowledgement deadlines passed (called by the dispatcher's tick)."""
        written = await self._write(
            escalation.store_escalations,
            notification_ids=notification_ids,
            routing=self.routing,
            grid=self.grid,
            now=self.clock(),
        )
        self._hand_over(written)
