"""What every push-protocol receiver needs from the gateway, in one place.

- ``store``: events go to the bus (rules, incidents, live views) and to the batch writer, as
  the MQTT path does, and the call returns once they are committed — and, for a panic, once
  its incident is stored too (``gateway.ingest.ack_gate``). A receiver answers the device
  (DC-09 ACK, SIP 200) only after that: stored before acknowledged, at least once.
- ``quarantine``: what a receiver could not read, with the reason, in the quarantine table
  (through the gateway's sampler: counted exactly, rows kept up to a rate).
- ``unregistered_panic``: the one place where a panic from a device the registry does not know
  goes (never dropped): the gateway's ``report_unregistered_panic`` raises it as a P1 incident
  marked 未登记设备 and keeps its quarantine record.

Thread-safety: ``store`` and ``unregistered_panic`` run on the event loop; the writer thread
reports commits and the rules/incidents report settlements through the ack gate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from gateway.bus import EventBus
from gateway.events import Event, utcnow
from gateway.ingest.ack_gate import AckGate, Settling, gated, settle_evaluated, settle_stored
from gateway.ingest.pipeline import QuarantineRecord
from gateway.ingest.reasons import Reason
from gateway.storage.writer import BatchWriter, WriteItem

if TYPE_CHECKING:
    from rules.signal import Signal

log = logging.getLogger(__name__)

LOG_ONCE_KEYS = 10_000  # (source, reason) pairs already logged; reset when full


class _Ticket:
    """One ``store`` call waiting on the event loop for its commit (and settlement)."""

    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[None] = loop.create_future()

    def release(self) -> None:
        """From any thread: the events are stored (and settled)."""
        with contextlib.suppress(RuntimeError):  # the loop closed during shutdown
            self.loop.call_soon_threadsafe(self._done)

    def _done(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


class _Committed(threading.Event):
    """The writer sets an item's barrier once the batch holding it is committed; this one
    also tells the sink, so nothing has to block a thread waiting for it."""

    def __init__(self, on_commit: Callable[[], None]) -> None:
        super().__init__()
        self._on_commit = on_commit

    def set(self) -> None:
        super().set()
        self._on_commit()


class ReceiverSink:
    """The gateway as the receivers see it (see the module doc)."""

    def __init__(
        self,
        bus: EventBus,
        writer: BatchWriter,
        *,
        quarantine_raw_bytes: int = 4096,
        quarantine: Callable[[QuarantineRecord], None] | None = None,
        report_panic: Callable[..., Awaitable[Any]] | None = None,
    ) -> None:
        self.bus = bus
        self.writer = writer
        self.quarantine_raw_bytes = quarantine_raw_bytes
        self._keep = quarantine or (lambda record: writer.submit(WriteItem(quarantined=record)))
        self._report_panic = report_panic
        # Panics wait here for their incident, like MQTT PUBACKs (its own gate: its tokens
        # are tickets, the MQTT gate's are packet ids).
        self.gate = AckGate(self._release)
        self._logged: set[tuple[str, str]] = set()

    async def store(self, events: list[Event], *, timeout_s: float) -> bool:
        """Publish and store ``events``; True once committed (and every panic among them
        settled), False if that took longer than ``timeout_s`` — they are still on their way,
        the device is simply not answered yet (it repeats, and the repeat is recognised)."""
        if not events:
            return True
        ticket = _Ticket(asyncio.get_running_loop())
        ids = gated(events)
        if ids:
            self.gate.hold(ticket, ids)  # before the bus: the rules cannot settle it first
        self.bus.publish_many(events)
        self.writer.submit(
            WriteItem(events=list(events), barrier=_Committed(lambda: self._committed(ticket)))
        )
        try:
            await asyncio.wait_for(asyncio.shield(ticket.future), timeout_s)
        except TimeoutError:
            log.warning(
                "%d event(s) not stored within %.1f s; not acknowledged", len(events), timeout_s
            )
            return False
        return True

    def quarantine(
        self, *, source: str, reason: Reason, detail: str, device_id: str | None, raw: bytes
    ) -> None:
        """Keep a record of what could not become an event (thread-safe), and log it once
        per device (or source) and reason: a flood of bad frames must not flood the log."""
        key = (device_id or source, reason.value)
        if key not in self._logged:
            if len(self._logged) >= LOG_ONCE_KEYS:
                self._logged.clear()
            self._logged.add(key)
            log.warning(
                "quarantined %s from %s: %s (logged once per source and reason)",
                reason.value,
                device_id or source,
                detail[:300],
            )
        record = QuarantineRecord(
            received_at=utcnow(),
            topic=source[:512],
            reason=reason,
            detail=detail[:1000],
            device_id=device_id[:128] if device_id else None,
            raw=raw[: self.quarantine_raw_bytes],
            size=len(raw),
        )
        self._keep(record)

    async def unregistered_panic(
        self, *, source: str, device_id: str, detail: str, raw: bytes
    ) -> bool:
        """A panic from a device the registry does not know (an unknown SIA account, an
        unregistered GB/T 28181 device): raised as a P1 incident for it through the gateway
        (``Gateway.report_unregistered_panic``, which also keeps the quarantine record). True
        once the incident is stored: the receiver then acknowledges the device. Without that
        entry point (a sink on its own, in tests) the panic is only quarantined and False is
        returned: the receiver answers that it cannot take the message (DC-09 DUH, SIP 403),
        so the device tries its backup path."""
        log.error("PANIC from unregistered device %s (%s): %s", device_id, source, detail)
        if self._report_panic is not None:
            report = await self._report_panic(
                device_id=device_id, protocol=source.split("/")[0], raw=raw,
                detail=f"panic from an unregistered device: {detail}", origin=source,
            )  # fmt: skip
            return bool(report.stored)
        self.quarantine(
            source=source,
            reason=Reason.UNKNOWN_DEVICE,
            detail=f"panic from an unregistered device: {detail}",
            device_id=device_id,
            raw=raw,
        )
        return False

    # -- writer thread / event loop callbacks ------------------------------------------------
    def _committed(self, ticket: _Ticket) -> None:
        self._release(self.gate.committed([ticket]))

    @staticmethod
    def _release(tickets: list[_Ticket]) -> None:
        for ticket in tickets:
            ticket.release()


def settle_on_all(
    gates: Iterable[Settling],
) -> tuple[Callable[[Event, list[Signal]], None], Callable[[Signal], None]]:
    """``(on_evaluated, on_stored)`` callbacks for the rules and the incident service that
    settle panics held by every gate (the MQTT consumer's and the receivers')."""
    held = tuple(gates)

    def on_evaluated(event: Event, signals: list[Signal]) -> None:
        for gate in held:
            settle_evaluated(gate, event, signals)

    def on_stored(signal: Signal) -> None:
        for gate in held:
            settle_stored(gate, signal)

    return on_evaluated, on_stored
