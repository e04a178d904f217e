"""Hold a panic message's acknowledgement until its incident is stored.

A message is normally acknowledged once its events are committed. For a panic press that
is not enough: the rules evaluate events from memory, so a crash after the commit but before
the rules and the incident service are done would lose the alarm (stored, acknowledged, never
raised). Its PUBACK is therefore held until both are true:

- the batch holding its events is committed (the batch writer says so), and
- every gated event of the message is *settled*: the incident service stored a signal that
  carries it, or the rules evaluated it and no signal carries it.

A crash before that leaves the message unacknowledged, so the broker redelivers it after the
restart; the rules and incidents recognise what they had already done (stable signal ids).

Thread-safe: the receive thread holds (before the events reach the bus, so a settlement
cannot come first), the writer thread commits, the event loop settles.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from gateway.events import Event, EventType

if TYPE_CHECKING:
    from rules.signal import Signal

GATED_TYPES = frozenset({EventType.PANIC})
MAX_HELD = 10_000  # beyond this, acknowledge on commit (a flood must not pin the broker)


class Settling(Protocol):
    """What the rules and the incident service settle: an ``AckGate``, or several
    (gateway.cluster.site_sessions: one per site session)."""

    def settled(self, event_ids: Iterable[str]) -> None: ...


@dataclass(slots=True)
class _Held:
    token: Any
    waiting: set[str]  # gated event ids not yet settled
    committed: bool = False


@dataclass
class GateStats:
    held: int = 0
    released: int = 0
    overflow: int = 0  # messages acknowledged on commit because too many were held


def gated(
    events: Iterable[Event], redelivered: Iterable[Event] = (), gate: AckGate | None = None
) -> list[str]:
    """Ids of the events whose message must wait for its incident: gated types, and
    redeliveries of gated events the gate still waits for."""
    ids = [e.event_id for e in events if e.type in GATED_TYPES]
    if gate is not None:
        ids += [
            e.event_id for e in redelivered if e.type in GATED_TYPES and gate.waiting(e.event_id)
        ]
    return ids


class AckGate:
    """Acknowledgement tokens held until commit and settlement (see module doc)."""

    def __init__(self, send: Callable[[list[Any]], None]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._by_token: dict[Any, _Held] = {}
        self._by_event: dict[str, list[_Held]] = {}
        self.stats = GateStats()

    def __len__(self) -> int:
        return len(self._by_token)

    def hold(self, token: Any, event_ids: list[str]) -> bool:
        """Hold ``token`` until ``event_ids`` are settled; False when it is not held."""
        with self._lock:
            if len(self._by_token) >= MAX_HELD:
                self.stats.overflow += 1
                return False
            waiting = set(event_ids)
            held = _Held(token, waiting)
            self._by_token[token] = held
            for event_id in waiting:
                self._by_event.setdefault(event_id, []).append(held)
            self.stats.held += 1
            return True

    def committed(self, tokens: list[Any]) -> list[Any]:
        """The writer committed these tokens' events; returns those to acknowledge now
        (not held, or held and already settled)."""
        now: list[Any] = []
        with self._lock:
            for token in tokens:
                held = self._by_token.get(token)
                if held is None:
                    now.append(token)
                    continue
                held.committed = True
                if not held.waiting:
                    self._drop(held)
                    now.append(token)
        return now

    def settled(self, event_ids: Iterable[str]) -> None:
        """The rules and incidents are done with these events: acknowledge what is ready."""
        ready: list[Any] = []
        with self._lock:
            for event_id in event_ids:
                for held in self._by_event.pop(event_id, ()):
                    held.waiting.discard(event_id)
                    if not held.waiting and held.committed:
                        self._drop(held)
                        ready.append(held.token)
        if ready:
            self._send(ready)

    def waiting(self, event_id: str) -> bool:
        """Whether the event was held and is not settled yet (a redelivery of it must wait
        too, though the normaliser drops it as a duplicate)."""
        return event_id in self._by_event

    def forget(self) -> None:
        """A new connection: held tokens belong to the old one and the broker resends
        those messages, which are held again when they arrive. Which events are still
        unsettled is kept, so those redeliveries wait for them."""
        with self._lock:
            self._by_token.clear()
            if len(self._by_event) > MAX_HELD:
                self._by_event.clear()  # bounded: beyond this, redeliveries ack on commit
            for holders in self._by_event.values():
                holders.clear()

    def _drop(self, held: _Held) -> None:
        self._by_token.pop(held.token, None)
        self.stats.released += 1


def settle_evaluated(gate: Settling, event: Event, signals: list[Signal]) -> None:
    """The rules evaluated ``event``: settled now unless a signal carries it (then it is
    settled when the incident service has stored that signal)."""
    if event.type in GATED_TYPES and not any(
        e.event_id == event.event_id for s in signals for e in s.events
    ):
        gate.settled([event.event_id])


def settle_stored(gate: Settling, signal: Signal) -> None:
    """The incident service stored ``signal`` (or found it stored already)."""
    ids = [e.event_id for e in signal.events if e.type in GATED_TYPES]
    if ids:
        gate.settled(ids)
