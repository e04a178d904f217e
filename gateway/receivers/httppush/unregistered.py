"""Panic-like alarms from senders the receiver could not accept (unknown device, wrong
credentials, not registered): never dropped silently.

The push is refused on the wire (4xx) and quarantined with its reason like any other; in
addition, when it reads as a panic, :func:`report_unregistered_panic` logs it at CRITICAL
(the log redaction keeps personal numbers out), counts it, and hands it to the gateway's
entry point for unregistered devices' panics (``Gateway.report_unregistered_panic``), which
raises a P1 incident marked 未登记设备 without waiting: the device has its 4xx already.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

from gateway.events import Event

log = logging.getLogger(__name__)

#: Reports per receiver since start (for tests and health).
REPORTED: Counter[str] = Counter()
_RAISING: set[asyncio.Task[Any]] = set()  # incidents being raised (a reference keeps each alive)


def report_unregistered_panic(
    *,
    receiver: str,
    device_id: str | None,
    source_address: str,
    why: str,
    events: list[Event],
    raw: bytes = b"",
    handler: Callable[..., Coroutine[Any, Any, Any]] | None = None,
) -> None:
    """A refused push from ``device_id`` (as it claims to be) at ``source_address`` reads as
    a panic (``events``, made with a stand-in registry entry). ``why`` it was refused."""
    REPORTED[receiver] += 1
    log.critical(
        "%s: PANIC-LIKE ALARM from unregistered sender %s at %s refused (%s); %d event(s): %s",
        receiver,
        device_id or "(unnamed)",
        source_address or "?",
        why,
        len(events),
        ", ".join(sorted({e.event_id for e in events}))[:300],
    )
    if handler is None:
        return
    origin = f"{receiver}:{source_address or '?'}"
    task: asyncio.Task[Any] = asyncio.get_running_loop().create_task(
        handler(
            device_id=device_id or origin,
            protocol=receiver,
            raw=raw,
            origin=origin,
            detail=f"panic-like push refused ({why})",
        )
    )
    _RAISING.add(task)
    task.add_done_callback(_RAISING.discard)
