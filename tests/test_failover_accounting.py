"""bench/failover.py's accounting: what counts as lost, duplicated, or missing an incident."""

from __future__ import annotations

from bench.failover_accounting import (
    duplicate_deliveries,
    duplicate_notification_rows,
    during,
    percentile_ms,
    tally_events,
    tally_incidents,
)


def test_events_lost_duplicated_and_unexpected_are_told_apart() -> None:
    tally = tally_events(["a", "b", "c", "d"], ["a", "b", "b", "b", "c", "x"])
    assert (tally.sent, tally.stored) == (4, 6)
    assert tally.lost == 1 and tally.lost_examples == ("d",)
    assert tally.duplicates == 2  # b stored three times
    assert tally.unexpected == 1  # x: nobody sent it


def test_a_clean_run_counts_nothing() -> None:
    tally = tally_events(["a", "b"], ["b", "a"])
    assert (tally.lost, tally.duplicates, tally.unexpected) == (0, 0, 0)


def incident(rule: str, key: str, site: str, ids: list[str], category: str = "panic") -> dict:  # type: ignore[type-arg]
    return {"rule_id": rule, "group_key": key, "site": site, "category": category, "event_ids": ids}


def test_two_incidents_from_one_first_event_are_a_duplicate() -> None:
    rows = [
        incident("panic", "h1", "s1", ["p1"]),
        incident("panic", "h1", "s1", ["p1"]),  # a second worker opened it again
        incident("panic", "h2", "s1", ["p2", "p3"]),
        incident("door-forced", "d1", "s1", ["e9"], category="intrusion"),
    ]
    tally = tally_incidents(rows, ["p1", "p2", "p3", "p4"])
    assert tally.duplicate_incidents == 1
    assert tally.panic_incidents == 3
    assert tally.panics_without_incident == ("p4",)


def test_a_panic_only_in_a_non_panic_incident_does_not_count() -> None:
    rows = [incident("other", "k", "s1", ["p1"], category="intrusion")]
    assert tally_incidents(rows, ["p1"]).panic_incidents == 0


def row(incident_id: int, occasion: str = "new", recipient: str = "d1", level: int = 0) -> dict:  # type: ignore[type-arg]
    return {
        "incident_id": incident_id,
        "occasion": occasion,
        "level": level,
        "recipient_kind": "police-desk",
        "recipient_id": recipient,
        "channel": "mqtt",
    }


def test_notification_rows_twice_for_one_recipient_are_duplicates_reminders_are_not() -> None:
    rows = [
        row(1),
        row(1),  # duplicate
        row(1, recipient="d2"),
        row(1, occasion="escalation", level=1),
        row(1, occasion="escalation", level=2),
        row(1, occasion="reminder"),
        row(1, occasion="reminder"),
    ]
    assert duplicate_notification_rows(rows) == {"new": 1}
    assert duplicate_notification_rows(rows[2:]) == {}


def test_a_new_notification_delivered_twice_on_one_topic_is_a_duplicate() -> None:
    desk = "lianfang/notify/police-desk/d1"
    messages = [
        (desk, {"occasion": "new", "incident_id": 1}),
        (desk, {"occasion": "new", "incident_id": 1}),
        (desk, {"occasion": "new", "incident_id": 2}),
        ("lianfang/notify/police-desk/d2", {"occasion": "new", "incident_id": 1}),
        (desk, {"occasion": "acknowledged", "incident_id": 1}),
    ]
    assert duplicate_deliveries(messages) == 1


def test_percentile_and_window() -> None:
    assert percentile_ms([], 0.99) is None
    assert percentile_ms([0.010, 0.020, 0.030, 1.0], 0.5) == 30.0
    assert percentile_ms([0.010, 0.020, 0.030, 1.0], 0.99) == 1000.0
    assert sorted(during({"a": 1.0, "b": 5.0, "c": 9.0}, 2.0, 9.0)) == ["b", "c"]
