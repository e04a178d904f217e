"""A panic whose incident cannot be stored yet still reaches the live channels at once.

Normally an incident is stored, its outbox rows with it, and only then sent ("stored before
sent"). While the database is down that would hold a resident's alarm for as long as the
outage lasts. So for every urgent (P1) new signal:

- when the database is known to be down (``gateway.storage.outage``), or the signal is not
  stored within ``ANNOUNCE_AFTER_S`` (a locked SQLite makes a write wait, not fail), it is
  told at once to the live channels (MQTT and the console push) of every recipient its
  route would tell without waiting, marked ``stored: false`` (未入库 / not yet stored), with
  no incident id and no acknowledgement asked (nothing could record it);
- the signal stays queued and is stored when the database is back (``signal_queue`` retries
  it; a redelivered message finds it by its signal id, so it opens one incident); its
  ordinary notifications then go out from the outbox as usual, marked stored.

A recipient may so hear of one press twice: first not stored, then stored with its incident.
Both carry the signal id and the event ids to match them. See docs/database-outage.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from gateway.grid.directory import Location
from gateway.incidents.outbox import PAYLOAD_EVENT_IDS, iso
from gateway.notify.base import IncidentPlace, Message
from gateway.routing.planner import Delivery
from gateway.storage.outage import DatabaseOutage
from rules.signal import Signal

log = logging.getLogger(__name__)

ANNOUNCE_AFTER_S = 0.5  # a P1 signal not stored by then is told live, marked not stored
LIVE_CHANNELS = frozenset({"mqtt", "console"})
OCCASION = "unstored"


def live_messages(
    signal: Signal, loc: Location, deliveries: Sequence[Delivery], now: datetime
) -> list[Message]:
    """The not-yet-stored alert for each live channel told without waiting."""
    base: dict[str, Any] = {
        "v": 1,
        "occasion": OCCASION,
        "stored": False,
        "status_zh": "未入库",
        "status_en": "not yet stored",
        "incident_id": None,
        "signal_id": signal.signal_id,
        "category": signal.category.value,
        "severity": signal.severity.value,
        "title_zh": signal.title_zh,
        "title_en": signal.title_en,
        "site": loc.site or signal.site,
        "cell": loc.cell,
        "place": loc.place,
        "device_id": signal.device_id,
        "household": loc.household,
        "address": loc.address or None,
        "event_ids": [e.event_id for e in signal.events][-PAYLOAD_EVENT_IDS:],
        "fired_at": iso(signal.fired_at),
        "announced_at": iso(now),
        "ack_required": False,
    }
    place = IncidentPlace(loc.cell, loc.site or signal.site, None)
    messages = []
    for d in deliveries:
        if d.channel not in LIVE_CHANNELS or d.group_wait > 0:
            continue
        recipient = {"kind": d.recipient.kind, "id": d.recipient.id, "name": d.recipient.name}
        payload = {**base, "receiver": d.receiver, "recipient": recipient}
        messages.append(
            Message(
                0, 0, d.channel, d.recipient.kind, d.recipient.id, d.recipient.name, payload, place
            )
        )
    return messages


class UnstoredAlerts:
    """Watches urgent signals until they are stored; tells the live channels of those that
    are not (see module doc). On the event loop."""

    def __init__(
        self,
        outage: DatabaseOutage,
        announce: Callable[[Signal], None],
        *,
        after_s: float = ANNOUNCE_AFTER_S,
    ) -> None:
        self.outage = outage
        self._announce = announce
        self.after_s = after_s
        self._watching: dict[str, asyncio.TimerHandle | None] = {}
        self._told: set[str] = set()  # announced, not stored yet
        self.announced = 0

    @property
    def waiting(self) -> int:
        """Panics told live and not stored yet."""
        return len(self._told)

    def watch(self, signal: Signal) -> None:
        sid = signal.signal_id
        if sid in self._watching:
            return
        if self.outage.down:
            self._watching[sid] = None
            self._fire(signal)
        else:
            loop = asyncio.get_running_loop()
            self._watching[sid] = loop.call_later(self.after_s, self._fire, signal)

    def stored(self, signal_id: str) -> None:
        handle = self._watching.pop(signal_id, None)
        if handle is not None:
            handle.cancel()
        self._told.discard(signal_id)

    def _fire(self, signal: Signal) -> None:
        sid = signal.signal_id
        if sid not in self._watching or sid in self._told:
            return
        self._told.add(sid)
        self.announced += 1
        log.warning(
            "panic %s not stored yet (database %s): told to the live channels, marked 未入库",
            sid,
            "down" if self.outage.down else "slow",
        )
        try:
            self._announce(signal)
        except Exception:  # the stored path still tells everyone once the database is back
            log.exception("live alert of unstored signal %s failed", sid)
