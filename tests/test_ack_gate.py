"""AckGate: a panic's acknowledgement waits for both the commit and its incident."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gateway.events import DeviceKind, Event, EventType
from gateway.ingest import ack_gate
from gateway.ingest.ack_gate import AckGate, gated, settle_evaluated, settle_stored
from rules.model import Category, Severity
from rules.signal import Signal, SignalEvent

T = datetime(2026, 11, 22, 10, 0, tzinfo=UTC)


def event(event_id: str, type_: EventType = EventType.PANIC) -> Event:
    kind = DeviceKind.ALARM if type_ is EventType.PANIC else DeviceKind.ACCESS
    return Event(
        event_id=event_id,
        occurred_at=T,
        received_at=T,
        site="s",
        device_id="d",
        kind=kind,
        type=type_,
    )


def signal(*event_ids: str) -> Signal:
    return Signal(
        signal_id="sig",
        kind="new",
        rule_id="panic_button",
        severity=Severity.P1,
        category=Category.PANIC,
        title_zh="报警",
        title_en="Panic",
        group_key="g",
        events=[
            SignalEvent(event_id=i, type=EventType.PANIC, device_id="d", occurred_at=T)
            for i in event_ids
        ],
        fired_at=T,
    )


class Sent:
    def __init__(self) -> None:
        self.tokens: list[Any] = []

    def __call__(self, tokens: list[Any]) -> None:
        self.tokens += tokens


def test_only_panics_are_gated() -> None:
    assert gated([event("a"), event("b", EventType.ACCESS_GRANTED)]) == ["a"]


def test_a_message_that_is_not_held_is_acknowledged_on_commit() -> None:
    gate = AckGate(Sent())
    assert gate.committed([(1, 7)]) == [(1, 7)]


def test_held_until_committed_and_settled_in_either_order() -> None:
    sent = Sent()
    gate = AckGate(sent)
    gate.hold((1, 1), ["p1"])
    gate.hold((1, 2), ["p2"])
    assert gate.committed([(1, 1), (1, 2)]) == []  # committed, incidents not stored yet
    settle_stored(gate, signal("p1"))
    assert sent.tokens == [(1, 1)]
    settle_stored(gate, signal("p2"))
    assert sent.tokens == [(1, 1), (1, 2)]
    assert len(gate) == 0

    gate.hold((1, 3), ["p3"])
    settle_stored(gate, signal("p3"))  # settled before the commit
    assert sent.tokens == [(1, 1), (1, 2)]
    assert gate.committed([(1, 3)]) == [(1, 3)]


def test_a_message_with_two_panics_waits_for_both() -> None:
    sent = Sent()
    gate = AckGate(sent)
    gate.hold((1, 1), ["a", "b"])
    gate.committed([(1, 1)])
    settle_stored(gate, signal("a"))
    assert sent.tokens == []
    settle_stored(gate, signal("b"))
    assert sent.tokens == [(1, 1)]


def test_evaluated_without_a_signal_settles_but_a_carried_event_waits_for_storage() -> None:
    sent = Sent()
    gate = AckGate(sent)
    gate.hold((1, 1), ["p1"])
    gate.hold((1, 2), ["p2"])
    gate.committed([(1, 1), (1, 2)])
    settle_evaluated(gate, event("p1"), [])  # no signal (e.g. an engine error): done
    settle_evaluated(gate, event("p2"), [signal("p2")])  # the incident is still to come
    assert sent.tokens == [(1, 1)]
    settle_stored(gate, signal("p2"))
    assert sent.tokens == [(1, 1), (1, 2)]


def test_a_reconnect_forgets_the_tokens_but_a_redelivery_still_waits() -> None:
    sent = Sent()
    gate = AckGate(sent)
    gate.hold((1, 1), ["p1"])
    gate.forget()  # new connection: token (1, 1) is void, the broker resends the message
    assert len(gate) == 0 and gate.waiting("p1")
    # the redelivery is a duplicate to the normaliser (not on the bus again), yet gated
    assert gated([], [event("p1"), event("d", EventType.ACCESS_GRANTED)], gate) == ["p1"]
    gate.hold((2, 5), ["p1"])
    assert gate.committed([(2, 5)]) == []
    settle_stored(gate, signal("p1"))
    assert sent.tokens == [(2, 5)]
    assert not gate.waiting("p1")
    assert gated([], [event("p1")], gate) == []  # settled: a later redelivery acks on commit


def test_a_flood_is_acknowledged_on_commit_instead_of_held(monkeypatch: Any) -> None:
    monkeypatch.setattr(ack_gate, "MAX_HELD", 2)
    gate = AckGate(Sent())
    assert gate.hold((1, 1), ["a"]) and gate.hold((1, 2), ["b"])
    assert not gate.hold((1, 3), ["c"])
    assert gate.committed([(1, 3)]) == [(1, 3)]
    assert gate.stats.overflow == 1
