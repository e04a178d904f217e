"""The dispatcher: sends outbox rows, retries with backoff, watches acknowledgement deadlines.

- Rows arrive already committed (``submit``). Rows due now are sent at once, each in its own
  task, so one slow receiver never delays the others; later ones wait in a heap.
- Every state change is written back to the outbox (through ``run_db``, the incident
  service's writer thread).
- Time is the injected clock: ``tick()`` sends due retries and hands passed acknowledgement
  deadlines to ``on_deadline`` (escalation). A ticker task calls it every ``tick_s``; tests
  call it by hand on a virtual clock.
- ``start`` reloads unsent rows and open deadlines from the outbox, so timers survive
  restarts (a row caught mid-send is sent again: delivery is at least once).
- Shared (several workers on one PostgreSQL, ``shared=True``): the database is the only
  timer. Each row is claimed before it is sent (``claims``); every tick a sweep claims the
  due rows nobody holds (queued by any worker, retries, a dead worker's lapsed claims) and
  hands passed acknowledgement deadlines to ``on_deadline``, whose transaction fires each
  escalation once. Nothing is kept in memory but the sends in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine, and_, or_, select, update

from gateway.notify import claims
from gateway.notify.base import IncidentPlace, Message, Notifier, SendResult
from gateway.notify.console import NotificationHub
from gateway.notify.policy import RetryPolicy
from gateway.notify.tables import notifications
from gateway.storage.times import utc
from gateway.storage.write_lane import lane_for

log = logging.getLogger(__name__)

T = TypeVar("T")
RunDb = Callable[..., Awaitable[Any]]
DEFAULT_POLICY = RetryPolicy()
SEND_TIMEOUT_S = 30.0  # a notifier that hangs longer than this counts as a retryable failure
CLAIM_S = 120.0  # a claim lapses after this (shared): longer than any send may take


@dataclass(slots=True)
class Outgoing:
    """An outbox row on its way."""

    id: int
    incident_id: int
    channel: str
    recipient_kind: str
    recipient_id: str
    recipient_name: str
    payload: dict[str, Any]
    due: datetime
    attempts: int = 0
    place: IncidentPlace | None = None  # the incident's cell, site, reporter (console scope)

    def message(self) -> Message:
        return Message(
            self.id,
            self.incident_id,
            self.channel,
            self.recipient_kind,
            self.recipient_id,
            self.recipient_name,
            {**self.payload, "notification_id": self.id},
            self.place,
        )


@dataclass
class DispatchStats:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    escalations: int = 0
    in_flight: int = 0


@dataclass(order=True)
class _Timer:
    at: datetime
    seq: int
    row: Outgoing | None = field(compare=False, default=None)
    notification_id: int = field(compare=False, default=0)


class Dispatcher:
    def __init__(
        self,
        engine: Engine,
        notifiers: dict[str, Notifier],
        *,
        clock: Callable[[], datetime],
        run_db: RunDb,
        hub: NotificationHub | None = None,
        policies: dict[str, RetryPolicy] | None = None,
        default_policy: RetryPolicy = DEFAULT_POLICY,
        on_deadline: Callable[[list[int]], Awaitable[None]] | None = None,
        tick_s: float = 0.25,
        rng: random.Random | None = None,
        shared: bool = False,
        worker: str = "",
        claim_s: float = CLAIM_S,
    ) -> None:
        self.engine = engine
        self.notifiers = notifiers
        self.clock = clock
        self.run_db = run_db
        self.hub = hub
        self.policies = policies or {}
        self.default_policy = default_policy
        self.on_deadline = on_deadline
        self.tick_s = tick_s
        self.rng = rng or random.Random()
        self.shared = shared
        self.worker = worker or f"worker-{id(self):x}"
        self.claim_s = claim_s
        self.stats = DispatchStats()
        self._retries: list[_Timer] = []
        self._deadlines: list[_Timer] = []
        self._seq = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._attempts: list[tuple[Attempt, asyncio.Future[None]]] = []
        self._recorder: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self, *, ticker: bool = True) -> None:
        rows, deadlines = [], []
        if not self.shared:  # shared: the sweep finds them, claimed
            rows, deadlines = await self.run_db(load_pending, self.engine)
        for row in rows:
            self._schedule(row)
        for at, nid in deadlines:
            self.watch_deadline(at, nid)
        if rows or deadlines:
            log.info(
                "outbox: %d notifications to send, %d acknowledgement deadlines restored",
                len(rows),
                len(deadlines),
            )
        for notifier in set(self.notifiers.values()):
            await notifier.start()
        if ticker:
            self._ticker = asyncio.create_task(self._tick_forever(), name="notify-tick")

    async def stop(self, timeout_s: float = 5.0) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        await self.drain(timeout_s)
        for notifier in set(self.notifiers.values()):
            await notifier.stop()

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait for sends in flight (tests, shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)

    async def _tick_forever(self) -> None:
        failing = False  # log a failing streak (a database away) once, not every tick
        while True:
            await asyncio.sleep(self.tick_s)
            try:
                await self.tick()
            except Exception:
                if not failing:
                    log.exception("notification tick failed (logged once until it recovers)")
                failing = True
            else:
                if failing:
                    log.info("notification tick recovered")
                failing = False

    # -- intake ----------------------------------------------------------------------------
    def submit(self, rows: list[Outgoing], deadlines: list[tuple[datetime, int]] = ()) -> None:  # type: ignore[assignment]
        """Committed rows: send the due ones now (each its own task), keep the rest."""
        now = self.clock()
        for row in rows:
            if row.due <= now:
                self._spawn(row)
            else:
                self._schedule(row)
        for at, nid in deadlines:
            self.watch_deadline(at, nid)

    def watch_deadline(self, at: datetime, notification_id: int) -> None:
        if self.shared:
            return  # the sweep finds it once it has passed
        heapq.heappush(self._deadlines, _Timer(at, next(self._seq), None, notification_id))

    def _schedule(self, row: Outgoing) -> None:
        if self.shared:
            return  # the sweep claims it once it is due
        heapq.heappush(self._retries, _Timer(row.due, next(self._seq), row))

    def _spawn(self, row: Outgoing, *, claimed: bool = False) -> None:
        task = asyncio.create_task(self._deliver(row, claimed), name=f"notify-{row.id}")
        self._tasks.add(task)
        self.stats.in_flight += 1
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self.stats.in_flight -= 1
        if not task.cancelled() and task.exception() is not None:
            log.error("notification task failed", exc_info=task.exception())

    # -- timers ----------------------------------------------------------------------------
    async def tick(self) -> None:
        now = self.clock()
        while self._retries and self._retries[0].at <= now:
            timer = heapq.heappop(self._retries)
            assert timer.row is not None
            self._spawn(timer.row)
        due: list[int] = []
        while self._deadlines and self._deadlines[0].at <= now:
            due.append(heapq.heappop(self._deadlines).notification_id)
        if self.shared:
            due.extend(await self._sweep(now))
        if due and self.on_deadline is not None:
            self.stats.escalations += len(due)
            await self.on_deadline(due)

    async def _sweep(self, now: datetime) -> list[int]:
        """Shared: claim and send the due rows nobody holds; the passed deadlines."""
        until = now + timedelta(seconds=self.claim_s)
        for r in await asyncio.to_thread(claims.claim_due, self.engine, self.worker, now, until):
            self._spawn(row_to_outgoing(r), claimed=True)
        return await asyncio.to_thread(claims.due_deadlines, self.engine, now)

    def next_timer(self) -> datetime | None:
        times = [h[0].at for h in (self._retries, self._deadlines) if h]
        return min(times) if times else None

    # -- delivery --------------------------------------------------------------------------
    async def _record(self, attempt: Attempt) -> None:
        """Write an attempt's outcome back to the outbox. Outcomes that arrive while one
        write is under way share the next one: a panic's dozen notifications cost one or two
        transactions in the incident thread, not a dozen ahead of the next alarm's."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._attempts.append((attempt, done))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record_waiting(), name="notify-record")
        await done

    async def _record_waiting(self) -> None:
        while self._attempts:
            batch, self._attempts = self._attempts, []
            try:
                await self.run_db(record_attempts, self.engine, [a for a, _ in batch])
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)

    def policy(self, channel: str) -> RetryPolicy:
        return self.policies.get(channel, self.default_policy)

    async def _claim(self, row: Outgoing) -> bool:
        """Shared: take the row for this worker (its attempts as stored); False when it is
        not ours to send (sent, cancelled, not due, or another worker holds it)."""
        now = self.clock()
        until = now + timedelta(seconds=self.claim_s)
        attempts = await asyncio.to_thread(
            claims.claim_one, self.engine, row.id, self.worker, now, until
        )
        if attempts is None:
            return False
        row.attempts = attempts
        return True

    async def _deliver(self, row: Outgoing, claimed: bool = False) -> None:
        if self.shared and not claimed and not await self._claim(row):
            return
        notifier = self.notifiers.get(row.channel)
        if notifier is None:
            result = SendResult.fail(f"no notifier for channel {row.channel!r}")
        else:
            try:
                result = await asyncio.wait_for(notifier.send(row.message()), SEND_TIMEOUT_S)
            except TimeoutError:
                result = SendResult.retry(f"notifier gave no answer within {SEND_TIMEOUT_S:g}s")
            except Exception as exc:  # a notifier bug must not lose the notification
                log.exception("notifier %s failed", row.channel)
                result = SendResult.retry(f"{type(exc).__name__}: {exc}")
        row.attempts += 1
        now = self.clock()
        policy = self.policy(row.channel)
        if result.ok:
            status, next_at = "sent", None
            self.stats.sent += 1
        elif result.retryable and not policy.exhausted(row.attempts):
            status = "retry"
            next_at = now + timedelta(
                seconds=policy.delay(row.attempts, result.retry_after_s, self.rng)
            )
            row.due = next_at
            self._schedule(row)
            self.stats.retried += 1
        else:
            status, next_at = "dead", None
            self.stats.dead += 1
            log.warning(
                "notification %d to %s via %s is dead after %d attempt(s): %s",
                row.id,
                f"{row.recipient_kind}/{row.recipient_id}",
                row.channel,
                row.attempts,
                result.error,
            )
        worker = self.worker if self.shared else None
        await self._record(
            Attempt(row.id, status, row.attempts, now, next_at, result.error, worker)
        )
        if self.hub is not None:
            self.hub.publish(
                {
                    "type": "delivery",
                    "notification_id": row.id,
                    "incident_id": row.incident_id,
                    "recipient": f"{row.recipient_kind}/{row.recipient_id}",
                    "channel": row.channel,
                    "status": status,
                    "attempts": row.attempts,
                    "error": result.error or None,
                },
                place=row.place,
            )


# -- outbox queries (blocking; run through run_db) ----------------------------------------


@dataclass(slots=True)
class Attempt:
    """The outcome of one send, as written back to its outbox row."""

    notification_id: int
    status: str  # sent, retry or dead
    attempts: int
    at: datetime
    next_at: datetime | None
    error: str
    worker: str | None = None  # shared outbox: written only while this worker holds the claim


def record_attempts(engine: Engine, attempts: list[Attempt]) -> list[bool]:
    """Write the outcomes in one transaction and clear their claims (a cancelled row stays
    cancelled). An attempt with a ``worker`` (shared outbox) is written only while that
    worker holds the row's claim: False when the claim lapsed and another worker took it."""
    done: list[bool] = []
    n = notifications.c
    with lane_for(engine).urgent(), engine.begin() as conn:
        for a in attempts:
            values: dict[str, Any] = {
                "status": a.status,
                "attempts": a.attempts,
                "next_attempt_at": a.next_at,
                "last_error": a.error or None,
                "claimed_by": None,
                "claim_until": None,
            }
            if a.status == "sent":
                values["sent_at"] = a.at
            where = [n.id == a.notification_id, n.status != "cancelled"]
            if a.worker is not None:
                where.append(n.claimed_by == a.worker)
            rows = conn.execute(update(notifications).where(*where).values(**values)).rowcount
            done.append(bool(rows))
            if a.worker is not None and not rows:
                log.warning(
                    "notification %d: attempt not recorded (cancelled meanwhile, or the claim "
                    "lapsed)",
                    a.notification_id,
                )
    return done


def record_attempt(
    engine: Engine,
    notification_id: int,
    status: str,
    attempts: int,
    at: datetime,
    next_at: datetime | None,
    error: str,
    worker: str | None = None,
) -> bool:
    """One attempt's outcome (``record_attempts``); False when it was not recorded."""
    attempt = Attempt(notification_id, status, attempts, at, next_at, error, worker)
    return record_attempts(engine, [attempt])[0]


def row_to_outgoing(r: Any, now: datetime | None = None) -> Outgoing:
    due = utc(r.next_attempt_at) if r.next_attempt_at is not None else utc(r.created_at)
    return Outgoing(
        r.id,
        r.incident_id,
        r.channel,
        r.recipient_kind,
        r.recipient_id,
        r.recipient_name,
        dict(r.payload or {}),
        due,
        r.attempts,
        IncidentPlace(r.incident_cell, r.incident_site, r.incident_reporter),
    )


def load_pending(engine: Engine) -> tuple[list[Outgoing], list[tuple[datetime, int]]]:
    n = notifications.c
    pending = claims.with_incident_place().where(n.status.in_(("pending", "retry"))).order_by(n.id)
    with engine.connect() as conn:
        rows = [row_to_outgoing(r) for r in conn.execute(pending)]
        deadlines = [
            (utc(r.ack_deadline), int(r.id))
            for r in conn.execute(
                select(n.id, n.ack_deadline).where(
                    and_(
                        n.ack_required.is_(True),
                        n.acked_at.is_(None),
                        n.escalated_at.is_(None),
                        n.ack_deadline.is_not(None),
                        or_(n.status != "cancelled", n.status.is_(None)),
                    )
                )
            )
        ]
    return rows, deadlines
