"""Live pushes across workers through PostgreSQL LISTEN/NOTIFY (issue 16 part 5;
docs/cluster.md, "Live pushes across workers").

Each worker's console streams (events: ``/api/events/stream``; notifications and incident
updates: the ``NotificationHub``) see only what that worker handled. With several workers
on one PostgreSQL, ``ClusterPush``:

- forwards what this worker handles: every event on its bus (a non-viewer subscription that
  drops its oldest when behind, never slowing the bus) and every hub item (``hub.relay``), in
  batches of ``NOTIFY lianfang_live`` payloads under PostgreSQL's 8000-byte limit, each
  naming this worker;
- listens on a dedicated psycopg connection and hands the other workers' items to local
  viewers only (``bus.publish_to_viewers``, ``hub.deliver``): never to the rules or
  storage, and its own items are skipped (its viewers had them already);
- an event or notification too large for one payload travels as a reference (its id), and
  the listener reads it from the database (an event may still be on its way into storage:
  it is looked for a few times, then given up with a log line);
- reconnects with backoff (0.5 s doubling to 10 s) when either connection drops; items
  published meanwhile are lost to the other workers' live viewers (they remain stored).

Live pushes are best effort like the single-process streams: a viewer that falls behind
loses its oldest items.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import psycopg
from sqlalchemy import Engine, select

from gateway.bus import EventBus, Subscription
from gateway.events import Event
from gateway.notify.base import IncidentPlace
from gateway.notify.claims import with_incident_place
from gateway.notify.console import NotificationHub, console_item
from gateway.notify.dispatcher import row_to_outgoing
from gateway.notify.tables import notifications
from gateway.storage.tables import events

log = logging.getLogger(__name__)

CHANNEL = "lianfang_live"
MAX_PAYLOAD = 7900  # bytes; PostgreSQL refuses a NOTIFY payload of 8000 or more
OUTBOX = 10_000  # items waiting to be forwarded before the oldest are dropped
BACKOFF_S = (0.5, 10.0)
FETCH_TRIES = 10  # an event sent by reference: looked for this many times …
FETCH_WAIT_S = 0.3  # … this far apart


def conninfo(engine: Engine) -> str:
    """The engine's database as a libpq URL (psycopg's own connections)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class ClusterPush:
    def __init__(self, engine: Engine, bus: EventBus, hub: NotificationHub, worker: str) -> None:
        self.engine = engine
        self.bus = bus
        self.hub = hub
        self.worker = worker
        self.received = 0  # items from other workers handed to local viewers
        self.sent = 0  # NOTIFY payloads sent
        self.listening = asyncio.Event()  # set while LISTEN is in place (tests, health)
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue(OUTBOX)
        self._subscription: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self._subscription = self.bus.subscribe("cluster-push", maxsize=OUTBOX)
        self.hub.relay = self._relay
        self._tasks = [
            asyncio.create_task(self._pump_events(), name="cluster-push-events"),
            asyncio.create_task(self._send_forever(), name="cluster-push-send"),
            asyncio.create_task(self._listen_forever(), name="cluster-push-listen"),
        ]
        # Wait (briefly) for LISTEN, so what other workers publish from now on arrives.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.listening.wait(), 5.0)

    async def stop(self) -> None:
        self.hub.relay = None
        if self._subscription is not None:
            self.bus.unsubscribe(self._subscription)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # -- forwarding ------------------------------------------------------------------------
    def _queue(self, item: dict[str, Any]) -> None:
        if self._outbox.full():
            self._outbox.get_nowait()
        self._outbox.put_nowait(item)

    def _relay(
        self, item: dict[str, Any], recipient: str | None, place: IncidentPlace | None
    ) -> None:
        note = {
            "k": "n",
            "item": item,
            "to": recipient,
            "at": None if place is None else [place.cell, place.site, place.reporter],
        }
        if _size(note) > MAX_PAYLOAD and isinstance(item.get("notification_id"), int):
            note = {**note, "item": None, "ref": item["notification_id"]}
        self._queue(note)

    async def _pump_events(self) -> None:
        assert self._subscription is not None
        while True:
            event = await self._subscription.get()
            body = {"k": "e", "e": event.model_dump(mode="json", exclude={"raw"})}
            if _size(body) > MAX_PAYLOAD:
                body = {"k": "e", "ref": event.event_id}
            self._queue(body)

    async def _send_forever(self) -> None:
        delay = BACKOFF_S[0]
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    conninfo(self.engine), autocommit=True
                ) as conn:
                    delay = BACKOFF_S[0]
                    while True:
                        batch = [await self._outbox.get()]
                        while not self._outbox.empty() and len(batch) < 500:
                            batch.append(self._outbox.get_nowait())
                        async with conn.transaction():
                            for payload in self._payloads(batch):
                                await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
                                self.sent += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("live push: NOTIFY connection lost (%s); retrying in %gs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_S[1])

    def _payloads(self, items: list[dict[str, Any]]) -> list[str]:
        """``{"o": worker, "i": [items]}`` payloads, each under ``MAX_PAYLOAD`` bytes."""
        out: list[str] = []
        head = _size({"o": self.worker, "i": []})
        chunk: list[str] = []
        size = head
        for item in items:
            text = _dumps(item)
            n = len(text.encode())
            if chunk and size + n + 1 > MAX_PAYLOAD:
                out.append(self._envelope(chunk))
                chunk, size = [], head
            chunk.append(text)
            size += n + 1
        if chunk:
            out.append(self._envelope(chunk))
        return out

    def _envelope(self, chunk: list[str]) -> str:
        return '{"o":' + json.dumps(self.worker) + ',"i":[' + ",".join(chunk) + "]}"

    # -- listening -------------------------------------------------------------------------
    async def _listen_forever(self) -> None:
        delay = BACKOFF_S[0]
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    conninfo(self.engine), autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    delay = BACKOFF_S[0]
                    async for notice in conn.notifies():
                        await self._received(notice.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("live push: LISTEN connection lost (%s); retrying in %gs", exc, delay)
            self.listening.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_S[1])

    async def _received(self, payload: str) -> None:
        try:
            body = json.loads(payload)
            if body.get("o") == self.worker:
                return  # ours: local viewers had it from the bus or the hub
            for item in body.get("i", []):
                await self._deliver(item)
        except Exception:
            log.exception("live push: a payload could not be read")

    async def _deliver(self, item: dict[str, Any]) -> None:
        if item.get("k") == "e":
            if not self.bus.has_viewers:
                return  # nobody watches events here: not worth reading
            event = (
                Event.model_validate(item["e"]) if "e" in item else await self._fetch(item["ref"])
            )
            if event is not None:
                self.bus.publish_to_viewers([event])
                self.received += 1
            return
        note = item["item"]
        if note is None:
            note = await asyncio.to_thread(_notification_item, self.engine, int(item["ref"]))
            if note is None:
                return
        at = item.get("at")
        self.hub.deliver(note, item.get("to"), None if at is None else IncidentPlace(*at))
        self.received += 1

    async def _fetch(self, event_id: str) -> Event | None:
        """An event sent by reference, once it is stored."""
        for _ in range(FETCH_TRIES):
            event = await asyncio.to_thread(_stored_event, self.engine, event_id)
            if event is not None:
                return event
            await asyncio.sleep(FETCH_WAIT_S)
        log.warning("live push: event %s was announced but not found stored", event_id)
        return None


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def _size(value: Any) -> int:
    """Bytes of ``value`` as a payload says it (UTF-8)."""
    return len(_dumps(value).encode())


def _stored_event(engine: Engine, event_id: str) -> Event | None:
    e = events.c
    with engine.connect() as conn:
        row = conn.execute(
            select(
                e.event_id,
                e.site,
                e.device_id,
                e.kind,
                e.type,
                e.occurred_at,
                e.received_at,
                e.attributes,
                e.source,
            ).where(e.event_id == event_id)
        ).first()
    return None if row is None else Event.model_validate(dict(row._mapping))


def _notification_item(engine: Engine, notification_id: int) -> dict[str, Any] | None:
    """The console item of a notification too large for a payload, read from the outbox."""
    n = notifications.c
    with engine.connect() as conn:
        row = conn.execute(with_incident_place().where(n.id == notification_id)).first()
    return None if row is None else console_item(row_to_outgoing(row).message())
