"""Panic-like alarms from senders the receiver could not accept (unknown device, wrong
credentials, not registered): never dropped silently.

The push is refused on the wire (4xx) and quarantined with its reason like any other; in
addition, when it reads as a panic, :func:`report_unregistered_panic` is called. It is the one
place where the gateway's "unregistered device panic" entry point is to be called (being built
separately); until then it logs at CRITICAL, which the log redaction keeps free of personal
numbers, and counts.
"""

from __future__ import annotations

import logging
from collections import Counter

from gateway.events import Event

log = logging.getLogger(__name__)

#: Reports per receiver since start (for tests and health).
REPORTED: Counter[str] = Counter()


def report_unregistered_panic(
    *, receiver: str, device_id: str | None, source_address: str, why: str, events: list[Event]
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
