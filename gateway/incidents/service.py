"""IncidentService: signals, reports and workflow actions in; incidents, timeline and
outbox rows out.

It is the rules engine's ``SignalSink``. The alarm path for a new signal:

1. locate it on the grid and plan the deliveries (in memory, no query);
2. in the service's own writer thread, one small transaction: group into an open incident
   or insert a new one, its timeline entries and one outbox row per (recipient, channel);
   commit — the notification is stored before it is sent;
3. hand the rows to the dispatcher, which sends each in its own task.

Every write goes through one worker thread (``run_db``), so grouping (look for an open
incident, else insert) never races and the event batch writer is never waited for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, bindparam, insert, select, update
from sqlalchemy.exc import OperationalError

from gateway.api.queries import utc
from gateway.events import utcnow
from gateway.grid.directory import GridDirectory, Location
from gateway.incidents import attachments
from gateway.incidents.categories import IncidentCategory, Severity, Source
from gateway.incidents.lifecycle import (
    CLOSED_STAGES,
    OPEN_STAGES,
    Action,
    IllegalTransition,
    Request,
    Stage,
    next_stage,
)
from gateway.incidents.signal_queue import Queued, SignalQueue
from gateway.incidents.tables import (
    incident_attachments,
    incident_signals,
    incident_timeline,
    incidents,
)
from gateway.notify.base import IncidentPlace
from gateway.notify.console import NotificationHub
from gateway.notify.dispatcher import Dispatcher, Outgoing
from gateway.notify.tables import notifications
from gateway.routing.model import RoutingConfig, Target
from gateway.routing.planner import Delivery, escalation_plan, plan
from gateway.routing.tree import RouteInput
from rules.signal import Signal

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], datetime]
MAX_EVENT_IDS = 50
UPDATE_LOOKUP_CHUNK = 500  # signal ids per look-up (bound parameters stay few)
SYSTEM = "system"


class IncidentNotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class Report:
    """A manual report or a resident's 随手报."""

    source: Source
    category: IncidentCategory
    severity: Severity
    title_zh: str
    title_en: str = ""
    description: str = ""
    site: str | None = None
    cell: str | None = None
    place: str | None = None
    device_id: str | None = None
    household: str | None = None
    location: dict[str, Any] | None = None
    reporter: str = ""
    role: str = ""
    attachments: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ActionInput:
    action: Action
    actor: str
    role: str = ""
    note: str = ""
    assignees: tuple[str, ...] = ()
    score: int | None = None
    attachments: tuple[str, ...] = ()


@dataclass
class Written:
    incident_id: int | None = None
    created: bool = False
    rows: list[Outgoing] = field(default_factory=list)
    deadlines: list[tuple[datetime, int]] = field(default_factory=list)
    stage: Stage | None = None
    place: IncidentPlace | None = None  # of incident_id: scopes the console push


def _update_values(
    inc: dict[str, Any], signal: Signal, event_ids: list[str], now: datetime
) -> dict[str, Any]:
    """An incident's columns after a later update of its signal (events attached, state)."""
    return {
        "event_ids": (list(inc["event_ids"] or []) + event_ids)[-MAX_EVENT_IDS:],
        "event_count": max(inc["event_count"], signal.event_count),
        "signal_state": signal.state,
        "updated_at": now,
    }


def _timeline_row(
    incident_id: int,
    at: datetime,
    actor: str,
    role: str,
    action: Action,
    before: Stage | None,
    after: Stage | None,
    note: str = "",
    attachments: Sequence[str] = (),
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "incident_id": incident_id,
        "at": at,
        "actor": actor,
        "role": role,
        "action": action.value,
        "from_stage": before.value if before else None,
        "to_stage": after.value if after else None,
        "note": note[:4000],
        "attachments": list(attachments),
        "data": data or {},
    }


def _signal_timeline_row(
    incident_id: int, at: datetime, signal: Signal, event_ids: list[str]
) -> dict[str, Any]:
    """The timeline entry of a signal update: the rule's explanation and the new events."""
    return _timeline_row(
        incident_id,
        at,
        SYSTEM,
        "rules",
        Action.SIGNAL,
        None,
        None,
        note=signal.explanation,
        data={
            "signal_id": signal.signal_id,
            "state": signal.state,
            "events": event_ids,
            "severity": signal.severity.value,
        },
    )


def _place(inc: dict[str, Any]) -> IncidentPlace:
    """Where an incident is and who reported it."""
    return IncidentPlace(inc["cell"], inc["site"], inc["reporter"])


class AckOutcome(StrEnum):
    """What became of a recipient's acknowledgement (``IncidentService.acknowledge_as``)."""

    RECORDED = "recorded"
    DUPLICATE = "duplicate"  # every notification of that recipient was already acknowledged
    NOT_FOUND = "not_found"  # no such notification or incident
    NOT_ADDRESSED = "not_addressed"  # it exists, but was not sent to that recipient


@dataclass(frozen=True, slots=True)
class AckResult:
    outcome: AckOutcome
    notification_id: int | None = None
    incident_id: int | None = None
    target: str = ""
    detail: str = ""


@dataclass
class ServiceStats:
    signals: int = 0
    opened: int = 0
    grouped: int = 0
    updates: int = 0
    ignored: int = 0
    errors: int = 0


def _rank(severity: str) -> int:
    return {"P1": 1, "P2": 2, "P3": 3, "P4": 4}.get(severity, 9)


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
        self.signals = SignalQueue(self._store_open, self._store_update_batch)

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

    def _hand_over(self, written: Written) -> None:
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
        self.signals.put(signal, self.clock())

    async def settled(self, within_s: float | None = None) -> bool:
        """Wait until every signal emitted so far is stored; False on timeout."""
        return await self.signals.settled(within_s)

    async def _store_open(self, item: Queued) -> None:
        signal = item.signal
        loc = self.grid.locate(
            site=signal.site,
            device_id=signal.device_id,
            household=signal.labels.get("device.household"),
        )
        x = RouteInput(
            signal.category.value,
            signal.severity.value,
            Source.RULE.value,
            loc.cell,
            loc.community,
            loc.site,
            signal.rule_id,
            signal.labels,
        )
        deliveries = plan(self.routing, self.grid, x, loc)
        written = await self.run_db(self._store_signal, signal, loc, deliveries, item.at)
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
            self._hand_over(written)
            if self.on_stored is not None:
                self.on_stored(item.signal)

    def _store_updates(self, items: list[Queued]) -> list[Written]:
        with self.engine.begin() as conn:
            if any(item.signal.state == "cancelled" for item in items):
                # Rare, and it reads and queues notifications: one at a time.
                return [self._apply_update(conn, item.signal, item.at) for item in items]
            return self._apply_updates(conn, items)

    def _apply_updates(self, conn: Connection, items: list[Queued]) -> list[Written]:
        """``_apply_update`` for many signals (none cancelled) in a few statements: one
        select of their incidents, one update per incident touched, one timeline insert.

        A perimeter storm sends hundreds of updates a second; per update, three statements'
        worth of SQLAlchemy work made the incident thread one of the gateway's busiest."""
        found: dict[str, dict[str, Any]] = {}
        signal_ids = list({item.signal.signal_id for item in items})
        for start in range(0, len(signal_ids), UPDATE_LOOKUP_CHUNK):
            chunk = signal_ids[start : start + UPDATE_LOOKUP_CHUNK]
            for row in conn.execute(
                select(incidents, incident_signals.c.signal_id.label("signal_id_"))
                .join(incident_signals, incident_signals.c.incident_id == incidents.c.id)
                .where(incident_signals.c.signal_id.in_(chunk))
            ):
                columns = dict(row._mapping)
                found[columns.pop("signal_id_")] = columns
        current: dict[int, dict[str, Any]] = {}  # incident id → its state after each update
        timeline: list[dict[str, Any]] = []
        out: list[Written] = []
        for item in items:
            signal, written = item.signal, Written()
            record = found.get(signal.signal_id)
            if record is None:
                self.stats.ignored += 1
                out.append(written)
                continue
            inc = current.setdefault(record["id"], record)
            event_ids = [e.event_id for e in signal.events]
            inc.update(_update_values(inc, signal, event_ids, item.at))
            timeline.append(_signal_timeline_row(inc["id"], item.at, signal, event_ids))
            self.stats.updates += 1
            written.incident_id, written.place = inc["id"], _place(inc)
            out.append(written)
        if current:
            conn.execute(
                update(incidents)
                .where(incidents.c.id == bindparam("b_id"))
                .values(
                    event_ids=bindparam("b_event_ids"),
                    event_count=bindparam("b_event_count"),
                    signal_state=bindparam("b_signal_state"),
                    updated_at=bindparam("b_updated_at"),
                ),
                [
                    {
                        "b_id": inc["id"],
                        "b_event_ids": inc["event_ids"],
                        "b_event_count": inc["event_count"],
                        "b_signal_state": inc["signal_state"],
                        "b_updated_at": inc["updated_at"],
                    }
                    for inc in current.values()
                ],
            )
        if timeline:
            conn.execute(insert(incident_timeline), timeline)
        return out

    # -- reports and actions ---------------------------------------------------------------
    async def report(self, report: Report) -> int:
        loc = self.grid.locate(
            site=report.site,
            device_id=report.device_id,
            place=report.place,
            household=report.household,
            cell=report.cell,
        )
        x = RouteInput(
            report.category.value,
            report.severity.value,
            report.source.value,
            loc.cell,
            loc.community,
            loc.site,
            None,
            {},
        )
        deliveries = plan(self.routing, self.grid, x, loc)
        written = await self.run_db(self._store_report, report, loc, deliveries, self.clock())
        self._hand_over(written)
        assert written.incident_id is not None
        return written.incident_id

    async def act(self, incident_id: int, request: ActionInput) -> Stage:
        """Apply a workflow action; raises ``IncidentNotFound`` or ``IllegalTransition``."""
        written = await self.run_db(self._store_action, incident_id, request, self.clock())
        self._hand_over(written)
        assert written.stage is not None
        return written.stage

    async def acknowledge(self, notification_id: int, actor: str) -> bool:
        written = await self.run_db(self._store_ack, notification_id, actor, self.clock())
        if written.incident_id is not None:
            self._hand_over(written)
        return written.incident_id is not None

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
        result, written = await self.run_db(
            self._store_recipient_ack,
            recipient_kind,
            recipient_id,
            notification_id,
            incident_id,
            actor,
            by,
            note,
            via,
            self.clock(),
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
        exists = await self.run_db(self._exists, incident_id)
        if not exists:
            raise IncidentNotFound(incident_id)
        meta = await asyncio.to_thread(attachments.write, data_dir, incident_id, data, kind)
        row = {
            **meta,
            "incident_id": incident_id,
            "filename": attachments.clean_name(filename),
            "uploaded_at": self.clock(),
            "uploaded_by": actor,
        }
        await self.run_db(self._store_attachment, row, role, note)
        return row

    def _exists(self, incident_id: int) -> bool:
        with self.engine.connect() as conn:
            return (
                conn.execute(select(incidents.c.id).where(incidents.c.id == incident_id)).first()
                is not None
            )

    def _store_attachment(self, row: dict[str, Any], role: str, note: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(incident_attachments), [row])
            stage = conn.execute(
                select(incidents.c.stage).where(incidents.c.id == row["incident_id"])
            ).scalar_one()
            self._timeline(
                conn,
                row["incident_id"],
                row["uploaded_at"],
                row["uploaded_by"],
                role,
                Action.ATTACH,
                Stage(stage),
                None,
                note=note,
                attachments=[row["id"]],
                data={
                    "filename": row["filename"],
                    "content_type": row["content_type"],
                    "size": row["size"],
                },
            )

    async def escalate(self, notification_ids: list[int]) -> None:
        """Acknowledgement deadlines passed (called by the dispatcher's tick)."""
        written = await self.run_db(self._store_escalations, notification_ids, self.clock())
        self._hand_over(written)

    # -- writer-thread work ------------------------------------------------------------------
    def _timeline(
        self,
        conn: Connection,
        incident_id: int,
        at: datetime,
        actor: str,
        role: str,
        action: Action,
        before: Stage | None,
        after: Stage | None,
        note: str = "",
        attachments: Sequence[str] = (),
        data: dict[str, Any] | None = None,
    ) -> None:
        conn.execute(
            insert(incident_timeline),
            [
                _timeline_row(
                    incident_id, at, actor, role, action, before, after, note, attachments, data
                )
            ],
        )

    def _payload(self, inc: dict[str, Any], occasion: str, loc: Location) -> dict[str, Any]:
        return {
            "v": 1,
            "occasion": occasion,
            "incident_id": inc["id"],
            "category": inc["category"],
            "severity": inc["severity"],
            "title_zh": inc["title_zh"],
            "title_en": inc["title_en"],
            "stage": inc["stage"],
            "site": inc["site"],
            "cell": inc["cell"],
            "place": inc["place"],
            "device_id": inc["device_id"],
            "household": inc["household"],
            "address": loc.address or None,
            "event_ids": list(inc["event_ids"] or [])[-10:],
            "opened_at": _iso(inc["opened_at"]),
        }

    def _queue(
        self,
        conn: Connection,
        inc: dict[str, Any],
        loc: Location,
        deliveries: Sequence[Delivery],
        occasion: str,
        now: datetime,
        written: Written,
        level: int = 0,
    ) -> None:
        """Insert outbox rows (one per recipient × channel) and remember them for sending."""
        deadline_s = self.routing.escalation.ack_deadline.get(Severity(inc["severity"]))
        base = self._payload(inc, occasion, loc)
        rows: list[dict[str, Any]] = []
        for d in deliveries:
            due = now + timedelta(seconds=d.group_wait)
            ack_deadline = (
                due + timedelta(seconds=deadline_s)
                if d.ack_required and deadline_s is not None
                else None
            )
            payload = {
                **base,
                "receiver": d.receiver,
                "target": d.recipient.target.value,
                "recipient": {
                    "kind": d.recipient.kind,
                    "id": d.recipient.id,
                    "name": d.recipient.name,
                },
                "ack_required": ack_deadline is not None,
                "ack_deadline": _iso(ack_deadline),
            }
            rows.append(
                {
                    "incident_id": inc["id"],
                    "occasion": occasion,
                    "route": d.route,
                    "receiver": d.receiver,
                    "target": d.recipient.target.value,
                    "recipient_kind": d.recipient.kind,
                    "recipient_id": d.recipient.id,
                    "recipient_name": d.recipient.name,
                    "channel": d.channel,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": due,
                    "created_at": now,
                    "ack_required": ack_deadline is not None,
                    "ack_deadline": ack_deadline,
                    "level": level,
                    "payload": payload,
                }
            )
        if rows:
            # One batched INSERT … RETURNING for every row (ids in parameter order).
            result = conn.execute(
                insert(notifications).returning(notifications.c.id, sort_by_parameter_order=True),
                rows,
            )
            for row, nid in zip(rows, result.scalars().all(), strict=True):
                written.rows.append(
                    Outgoing(
                        int(nid),
                        inc["id"],
                        row["channel"],
                        row["recipient_kind"],
                        row["recipient_id"],
                        row["recipient_name"],
                        row["payload"],
                        row["next_attempt_at"],
                        place=_place(inc),
                    )
                )
                if row["ack_deadline"] is not None:
                    written.deadlines.append((row["ack_deadline"], int(nid)))
        if deliveries:
            conn.execute(
                update(incidents).where(incidents.c.id == inc["id"]).values(last_notified_at=now)
            )
            self._timeline(
                conn,
                inc["id"],
                now,
                SYSTEM,
                "routing",
                Action.NOTIFY,
                None,
                None,
                note=", ".join(sorted({f"{d.recipient.name} ({d.receiver})" for d in deliveries})),
                data={
                    "occasion": occasion,
                    "recipients": sorted({d.recipient.key for d in deliveries}),
                },
            )

    def _insert_incident(self, conn: Connection, values: dict[str, Any]) -> dict[str, Any]:
        result = conn.execute(insert(incidents).returning(incidents.c.id), [values])
        return {**values, "id": int(result.scalar_one())}

    def _store_signal(
        self, signal: Signal, loc: Location, deliveries: list[Delivery], now: datetime
    ) -> Written:
        written = Written()
        event_ids = [e.event_id for e in signal.events]
        with self.engine.begin() as conn:
            known = conn.execute(
                select(incident_signals.c.incident_id).where(
                    incident_signals.c.signal_id == signal.signal_id
                )
            ).first()
            if known is not None:  # redelivered after a restart
                self.stats.ignored += 1
                return written
            open_row = conn.execute(
                select(incidents)
                .where(
                    incidents.c.rule_id == signal.rule_id,
                    incidents.c.group_key == signal.group_key,
                    incidents.c.site.is_(None)
                    if signal.site is None
                    else incidents.c.site == signal.site,
                    incidents.c.stage.in_([s.value for s in OPEN_STAGES]),
                )
                .order_by(incidents.c.id.desc())
                .limit(1)
            ).first()
            if open_row is not None:
                inc = dict(open_row._mapping)
                ids = (list(inc["event_ids"] or []) + event_ids)[-MAX_EVENT_IDS:]
                severity = min(inc["severity"], signal.severity.value, key=_rank)
                conn.execute(
                    update(incidents)
                    .where(incidents.c.id == inc["id"])
                    .values(
                        event_ids=ids,
                        event_count=inc["event_count"] + signal.event_count,
                        signal_count=inc["signal_count"] + 1,
                        severity=severity,
                        signal_state=signal.state,
                        updated_at=now,
                    )
                )
                inc.update(event_ids=ids, severity=severity)
                conn.execute(
                    insert(incident_signals),
                    [{"signal_id": signal.signal_id, "incident_id": inc["id"], "received_at": now}],
                )
                self._timeline(
                    conn,
                    inc["id"],
                    now,
                    SYSTEM,
                    "rules",
                    Action.SIGNAL,
                    None,
                    None,
                    note=signal.explanation,
                    data={
                        "signal_id": signal.signal_id,
                        "grouped": True,
                        "events": event_ids,
                        "state": signal.state,
                    },
                )
                last = inc["last_notified_at"]
                repeat = min((d.repeat_interval for d in deliveries), default=0.0)
                if deliveries and (last is None or now - utc(last) >= timedelta(seconds=repeat)):
                    self._queue(conn, inc, loc, deliveries, "reminder", now, written)
                self.stats.grouped += 1
                written.incident_id, written.place = inc["id"], _place(inc)
                return written
            inc = self._insert_incident(
                conn,
                {
                    "source": Source.RULE.value,
                    "category": signal.category.value,
                    "severity": signal.severity.value,
                    "title_zh": signal.title_zh[:300],
                    "title_en": signal.title_en[:300],
                    "description": signal.explanation,
                    "stage": Stage.DISCOVERED.value,
                    "site": loc.site or signal.site,
                    "cell": loc.cell,
                    "community": loc.community,
                    "place": loc.place,
                    "device_id": signal.device_id,
                    "household": loc.household,
                    "location": None,
                    "rule_id": signal.rule_id,
                    "group_key": signal.group_key,
                    "signal_state": signal.state,
                    "labels": dict(signal.labels),
                    "event_ids": event_ids[-MAX_EVENT_IDS:],
                    "event_count": signal.event_count,
                    "signal_count": 1,
                    "assignees": [],
                    "reporter": None,
                    "opened_at": now,
                    "updated_at": now,
                    "last_notified_at": None,
                },
            )
            conn.execute(
                insert(incident_signals),
                [{"signal_id": signal.signal_id, "incident_id": inc["id"], "received_at": now}],
            )
            self._timeline(
                conn,
                inc["id"],
                now,
                SYSTEM,
                "rules",
                Action.OPEN,
                None,
                Stage.DISCOVERED,
                note=signal.explanation,
                data={
                    "signal_id": signal.signal_id,
                    "rule_id": signal.rule_id,
                    "events": event_ids,
                    "fired_at": _iso(signal.fired_at),
                },
            )
            self._queue(conn, inc, loc, deliveries, "new", now, written)
        self.stats.opened += 1
        written.incident_id, written.created, written.place = inc["id"], True, _place(inc)
        return written

    def _apply_update(self, conn: Connection, signal: Signal, now: datetime) -> Written:
        """A later signal update: attach events, record resolve or cancel (never a stage
        change: people decide). A cancelled panic lowers the severity, stops escalation and
        tells everyone already notified."""
        written = Written()
        found = conn.execute(
            select(incidents)
            .join(incident_signals, incident_signals.c.incident_id == incidents.c.id)
            .where(incident_signals.c.signal_id == signal.signal_id)
        ).first()
        if found is None:
            self.stats.ignored += 1
            return written
        inc = dict(found._mapping)
        event_ids = [e.event_id for e in signal.events]
        values = _update_values(inc, signal, event_ids, now)
        if signal.state == "cancelled":
            values["severity"] = signal.severity.value
        conn.execute(update(incidents).where(incidents.c.id == inc["id"]).values(**values))
        inc.update(values)
        conn.execute(
            insert(incident_timeline), [_signal_timeline_row(inc["id"], now, signal, event_ids)]
        )
        if signal.state == "cancelled":
            self._stop_notifications(conn, inc["id"], now)
            told = conn.execute(
                select(
                    notifications.c.recipient_kind,
                    notifications.c.recipient_id,
                    notifications.c.recipient_name,
                    notifications.c.target,
                    notifications.c.channel,
                )
                .where(
                    notifications.c.incident_id == inc["id"],
                    notifications.c.status == "sent",
                    notifications.c.occasion != "cancel",
                )
                .distinct()
            ).all()
            loc = self.grid.locate(
                site=inc["site"],
                device_id=inc["device_id"],
                household=inc["household"],
                cell=inc["cell"],
            )
            from gateway.routing.targets import Recipient

            deliveries = [
                Delivery(
                    "cancel",
                    "cancel",
                    Recipient(r.recipient_kind, r.recipient_id, r.recipient_name, Target(r.target)),
                    r.channel,
                    False,
                    0.0,
                    0.0,
                )
                for r in told
            ]
            self._queue(conn, inc, loc, deliveries, "cancel", now, written)
        self.stats.updates += 1
        written.incident_id, written.place = inc["id"], _place(inc)
        return written

    def _stop_notifications(self, conn: Connection, incident_id: int, now: datetime) -> None:
        n = notifications.c
        conn.execute(
            update(notifications)
            .where(n.incident_id == incident_id, n.status.in_(("pending", "retry")))
            .values(status="cancelled", next_attempt_at=None)
        )
        conn.execute(
            update(notifications)
            .where(n.incident_id == incident_id, n.ack_required.is_(True), n.acked_at.is_(None))
            .values(ack_required=False)
        )

    def _store_report(
        self, report: Report, loc: Location, deliveries: list[Delivery], now: datetime
    ) -> Written:
        written = Written()
        with self.engine.begin() as conn:
            inc = self._insert_incident(
                conn,
                {
                    "source": report.source.value,
                    "category": report.category.value,
                    "severity": report.severity.value,
                    "title_zh": report.title_zh[:300],
                    "title_en": report.title_en[:300],
                    "description": report.description,
                    "stage": Stage.DISCOVERED.value,
                    "site": loc.site,
                    "cell": loc.cell,
                    "community": loc.community,
                    "place": loc.place,
                    "device_id": report.device_id,
                    "household": loc.household,
                    "location": report.location,
                    "rule_id": None,
                    "group_key": None,
                    "signal_state": None,
                    "labels": {},
                    "event_ids": [],
                    "event_count": 0,
                    "signal_count": 0,
                    "assignees": [],
                    "reporter": report.reporter or None,
                    "opened_at": now,
                    "updated_at": now,
                    "last_notified_at": None,
                },
            )
            self._check_attachments(conn, inc["id"], report.attachments, adopt=True)
            self._timeline(
                conn,
                inc["id"],
                now,
                report.reporter or "anonymous",
                report.role,
                Action.OPEN,
                None,
                Stage.DISCOVERED,
                note=report.description,
                attachments=report.attachments,
                data={"source": report.source.value, "location": report.location},
            )
            self._queue(conn, inc, loc, deliveries, "new", now, written)
        written.incident_id, written.created, written.place = inc["id"], True, _place(inc)
        return written

    def _check_attachments(
        self, conn: Connection, incident_id: int, ids: Sequence[str], *, adopt: bool = False
    ) -> None:
        """Attachments named by an action must belong to the incident (or, for a new report,
        be unclaimed uploads, which are then adopted)."""
        if not ids:
            return
        rows = conn.execute(
            select(incident_attachments.c.id, incident_attachments.c.incident_id).where(
                incident_attachments.c.id.in_(list(ids))
            )
        ).all()
        owner = {r.id: r.incident_id for r in rows}
        for a in ids:
            if a not in owner:
                raise IllegalTransition(Action.ATTACH, Stage.DISCOVERED, f"no attachment {a!r}")
            if owner[a] != incident_id:
                raise IllegalTransition(
                    Action.ATTACH,
                    Stage.DISCOVERED,
                    f"attachment {a!r} belongs to incident {owner[a]}",
                )

    def _store_action(self, incident_id: int, req: ActionInput, now: datetime) -> Written:
        written = Written()
        with self.engine.begin() as conn:
            found = conn.execute(select(incidents).where(incidents.c.id == incident_id)).first()
            if found is None:
                raise IncidentNotFound(incident_id)
            inc = dict(found._mapping)
            before = Stage(inc["stage"])
            after = next_stage(before, req.action, Request(req.assignees, req.score, req.note))
            self._check_attachments(conn, incident_id, req.attachments)
            values: dict[str, Any] = {"stage": after.value, "updated_at": now}
            if req.action is Action.DISPATCH:
                values["assignees"] = list(dict.fromkeys(req.assignees))
            if req.action is Action.EVALUATE:
                values["score"], values["evaluation"] = req.score, req.note
            if req.action is Action.ACKNOWLEDGE and inc["acked_at"] is None:
                values["acked_at"] = now
            if after in CLOSED_STAGES and before in OPEN_STAGES:
                values["closed_at"] = now
            if req.action is Action.REOPEN:
                values.update(closed_at=None, score=None, evaluation=None)
            conn.execute(update(incidents).where(incidents.c.id == incident_id).values(**values))
            inc.update(values)
            self._timeline(
                conn,
                incident_id,
                now,
                req.actor,
                req.role,
                req.action,
                before,
                after if after is not before or req.action in (Action.DISPATCH,) else None,
                note=req.note,
                attachments=req.attachments,
                data={
                    k: v for k, v in (("assignees", list(req.assignees)), ("score", req.score)) if v
                },
            )
            if after in CLOSED_STAGES:
                self._stop_notifications(conn, incident_id, now)
            if req.action is Action.DISPATCH:
                loc = self.grid.locate(
                    site=inc["site"],
                    device_id=inc["device_id"],
                    household=inc["household"],
                    cell=inc["cell"],
                )
                from gateway.routing.targets import Recipient

                deliveries = []
                for pid in values["assignees"]:
                    person = self.grid.people.get(pid)
                    name = person.name if person else pid
                    for channel in self.routing.escalation.channels:
                        deliveries.append(
                            Delivery(
                                "dispatch",
                                "dispatch",
                                Recipient("person", pid, name, Target.GRID_WORKER),
                                str(channel),
                                channel is self.routing.escalation.channels[0],
                                0.0,
                                0.0,
                            )
                        )
                self._queue(conn, inc, loc, deliveries, "dispatch", now, written)
        written.incident_id, written.stage, written.place = incident_id, after, _place(inc)
        return written

    def _store_ack(self, notification_id: int, actor: str, now: datetime) -> Written:
        written = Written()
        n = notifications.c
        with self.engine.begin() as conn:
            row = conn.execute(select(notifications).where(n.id == notification_id)).first()
            if row is None:
                return written
            self._record_ack(conn, row, actor, now)
        written.incident_id = int(row.incident_id)
        return written

    def _store_recipient_ack(
        self,
        kind: str,
        recipient_id: str,
        notification_id: int | None,
        incident_id: int | None,
        actor: str,
        by: str,
        note: str,
        via: str,
        now: datetime,
    ) -> tuple[AckResult, Written]:
        written = Written()
        n = notifications.c
        with self.engine.begin() as conn:
            if notification_id is not None:
                row = conn.execute(select(notifications).where(n.id == notification_id)).first()
                if row is None:
                    return AckResult(AckOutcome.NOT_FOUND, notification_id, incident_id), written
                if (row.recipient_kind, row.recipient_id) != (kind, recipient_id):
                    return AckResult(
                        AckOutcome.NOT_ADDRESSED,
                        notification_id,
                        int(row.incident_id),
                        detail=f"notification {notification_id} was sent to "
                        f"{row.recipient_kind}/{row.recipient_id}",
                    ), written
                if incident_id is not None and incident_id != row.incident_id:
                    return AckResult(
                        AckOutcome.NOT_ADDRESSED,
                        notification_id,
                        incident_id,
                        detail=f"notification {notification_id} belongs to incident "
                        f"{row.incident_id}",
                    ), written
            else:
                assert incident_id is not None
                row = conn.execute(
                    select(notifications)
                    .where(
                        n.incident_id == incident_id,
                        n.recipient_kind == kind,
                        n.recipient_id == recipient_id,
                    )
                    .order_by(n.ack_required.desc(), n.id)
                    .limit(1)
                ).first()
                if row is None:
                    exists = conn.execute(
                        select(incidents.c.id).where(incidents.c.id == incident_id)
                    ).first()
                    outcome = AckOutcome.NOT_FOUND if exists is None else AckOutcome.NOT_ADDRESSED
                    return AckResult(outcome, None, incident_id), written
            found = AckResult(
                AckOutcome.RECORDED, int(row.id), int(row.incident_id), target=str(row.target)
            )
            open_rows = conn.execute(
                select(n.id).where(
                    n.incident_id == row.incident_id,
                    n.recipient_kind == kind,
                    n.recipient_id == recipient_id,
                    n.acked_at.is_(None),
                )
            ).first()
            if open_rows is None:
                return AckResult(
                    AckOutcome.DUPLICATE, found.notification_id, found.incident_id, found.target
                ), written
            extra = f" via {via}" + (f" by {by}" if by else "") + (f": {note}" if note else "")
            data: dict[str, Any] = {"via": via}
            if by:
                data["by"] = by
            self._record_ack(conn, row, actor, now, note_suffix=extra, data=data)
        written.incident_id = found.incident_id
        return found, written

    def _record_ack(
        self,
        conn: Connection,
        row: Any,
        actor: str,
        now: datetime,
        *,
        note_suffix: str = "",
        data: dict[str, Any] | None = None,
    ) -> bool:
        """Acknowledge every row of that recipient for the incident (stops its escalation
        timers: ``_store_escalations`` skips acknowledged rows), the incident's first
        acknowledgement, and the timeline entry. False, and nothing recorded, when that
        recipient had acknowledged already (a repeated click or message)."""
        n = notifications.c
        changed = conn.execute(
            update(notifications)
            .where(
                n.incident_id == row.incident_id,
                n.recipient_kind == row.recipient_kind,
                n.recipient_id == row.recipient_id,
                n.acked_at.is_(None),
            )
            .values(acked_at=now, acked_by=actor)
        )
        if changed.rowcount == 0:
            return False
        inc = conn.execute(
            select(incidents.c.acked_at).where(incidents.c.id == row.incident_id)
        ).first()
        # The incident counts as acknowledged (figures: time to acknowledge) when a
        # responder with a deadline acknowledges; a neighbour's "seen" is on the timeline.
        if inc is not None and inc.acked_at is None and row.ack_required:
            conn.execute(
                update(incidents)
                .where(incidents.c.id == row.incident_id)
                .values(acked_at=now, updated_at=now)
            )
        self._timeline(
            conn,
            row.incident_id,
            now,
            actor,
            row.target,
            Action.ACKNOWLEDGE,
            None,
            None,
            note=f"{row.recipient_name} ({row.recipient_kind}/{row.recipient_id}){note_suffix}",
            data={"notification_id": int(row.id), **(data or {})},
        )
        return True

    def _store_escalations(self, ids: list[int], now: datetime) -> Written:
        written = Written()
        n = notifications.c
        with self.engine.begin() as conn:
            for nid in ids:
                row = conn.execute(select(notifications).where(n.id == nid)).first()
                if (
                    row is None
                    or row.acked_at is not None
                    or row.escalated_at is not None
                    or not row.ack_required
                ):
                    continue
                found = conn.execute(
                    select(incidents).where(incidents.c.id == row.incident_id)
                ).first()
                if found is None or Stage(found.stage) not in OPEN_STAGES:
                    continue
                inc = dict(found._mapping)
                conn.execute(update(notifications).where(n.id == nid).values(escalated_at=now))
                loc = self.grid.locate(
                    site=inc["site"],
                    device_id=inc["device_id"],
                    household=inc["household"],
                    cell=inc["cell"],
                )
                deliveries = escalation_plan(self.routing, self.grid, Target(row.target), loc)
                told = sorted({f"{d.recipient.name} ({d.recipient.key})" for d in deliveries})
                self._timeline(
                    conn,
                    inc["id"],
                    now,
                    SYSTEM,
                    "escalation",
                    Action.ESCALATE,
                    None,
                    None,
                    note=(
                        f"{row.recipient_name} ({row.recipient_kind}/{row.recipient_id}) did "
                        f"not acknowledge by {_iso(row.ack_deadline)}; "
                        + (
                            f"escalated to {', '.join(told)}"
                            if told
                            else "no one above on the ladder"
                        )
                    ),
                    data={
                        "notification_id": nid,
                        "from": row.target,
                        "to": [d.recipient.key for d in deliveries],
                        "level": row.level + 1,
                    },
                )
                self._queue(
                    conn, inc, loc, deliveries, "escalation", now, written, level=row.level + 1
                )
                written.incident_id, written.place = inc["id"], _place(inc)
        return written


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return utc(value).isoformat().replace("+00:00", "Z")
