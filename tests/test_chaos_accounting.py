"""The chaos bench's counting (bench/chaos/accounting.py) and its pure helpers."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from bench.chaos.accounting import deliveries_twice, device_of, percentile_ms, tally
from bench.chaos.faults import fill
from bench.chaos.load import event_id, schedule
from bench.chaos.stack import shipped_broker_settings


def test_a_clean_run_counts_nothing_lost() -> None:
    t = tally(["a", "b", "l:p:3"], ["a", "b", "l:p:3"], ["l:p:3"], [(["l:p:3"], "p")])
    assert t.as_dict() == {
        "sent": 3,
        "stored": 3,
        "lost": 0,
        "duplicates": 0,
        "panics_sent": 1,
        "panic_incidents": 1,
        "duplicate_incidents": 0,
    }


def test_lost_and_duplicate_rows_by_id() -> None:
    t = tally(["a", "b", "c", "d"], ["a", "a", "a", "c", "probe", "x"], [], [])
    assert (t.stored, t.lost, t.duplicates) == (4, 2, 2)  # b and d lost; a twice more


def test_panics_without_incident_and_in_two_incidents() -> None:
    p1, p2, p3 = "l:b1:1", "l:b2:2", "l:b3:3"
    t = tally(
        [p1, p2, p3, "r"],
        [p1, p2, p3, "r"],
        [p1, p2, p3],
        [([p1, "r"], "b1"), ([p1], "b1"), ([p2, p2], "b2"), (["other"], "x")],
    )
    assert (t.panics_sent, t.panic_incidents, t.duplicate_incidents) == (3, 2, 1)


def test_an_incident_of_the_button_counts_when_it_lists_no_press() -> None:
    """A press the gateway could not read as an event, raised as a panic all the same: the
    incident lists no press id but is of the press's button (one press per button)."""
    p1, p2 = "l:b1:1", "l:b2:2"
    t = tally([p1, p2], [p2], [p1, p2], [([], "b1"), ([p2], "b2"), (["q:9"], "b9")])
    assert (t.lost, t.panic_incidents, t.duplicate_incidents) == (1, 2, 0)
    # a second incident of a button pressed once is a duplicate, listed or not
    again = tally([p1], [p1], [p1], [([p1], "b1"), ([], "b1")])
    assert (again.panic_incidents, again.duplicate_incidents) == (1, 1)


def test_ids_must_be_unique_and_panics_sent() -> None:
    with pytest.raises(ValueError, match="twice"):
        tally(["a", "a"], [], [], [])
    with pytest.raises(ValueError, match="not sent"):
        tally(["a"], [], ["p"], [])


def test_device_of_an_event_id() -> None:
    assert device_of("lianfang:btn-4:120") == "btn-4"
    assert device_of("odd") == ""


def test_percentile_nearest_rank_in_ms() -> None:
    assert percentile_ms([], 0.99) is None
    values = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    assert percentile_ms(values, 0.99) == 100.0
    assert percentile_ms(values, 0.50) == 51.0


def test_deliveries_twice() -> None:
    assert deliveries_twice(Counter({1: 1, 2: 2, 3: 3})) == 2


def test_schedule_ids_unique_with_a_fresh_button_per_press() -> None:
    messages = schedule(2000, rate=500, panics_per_s=5)
    ids = [event_id(t, b) for t, b in messages]
    assert len(set(ids)) == 2000
    presses = [t for t, b in messages if b["type"] == "panic"]
    assert len(presses) == 20
    assert len(set(presses)) == 20  # every press from its own button
    assert all("/btn-" in t for t in presses)


def test_shipped_durability_settings_are_read_from_the_shipped_file() -> None:
    settings = shipped_broker_settings()
    assert "persistence true" in settings
    assert "autosave_interval 1" in settings
    assert "max_inflight_messages 0" in settings
    assert not any(line.startswith(("listener", "password_file", "log_dest")) for line in settings)


def test_fill_stops_at_no_space(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    written: list[int] = []

    class Small:
        def __enter__(self) -> Small:
            return self

        def __exit__(self, *_: object) -> None:
            return None

        def write(self, data: bytes) -> int:
            if sum(written) + len(data) > 5000:
                raise OSError(28, "No space left on device")
            written.append(len(data))
            return len(data)

    monkeypatch.setattr(Path, "open", lambda self, *a, **k: Small())
    fill(tmp_path)
    assert sum(written) == 5000  # to the last byte
