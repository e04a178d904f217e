"""One block of unit tests per condition kind."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from rules_helpers import at, engine_for, ev, write_rules

from rules.conditions.absence import AbsenceState
from rules.engine import Engine
from rules.loader import load_rules

HEAD = """
rules:
  - id: r
    severity: P2
    category: access
    title: {zh: "{count} 次", en: "{count} times"}
    cooldown: 0s
"""


def rule(condition: str, extra: str = "") -> str:
    return (
        HEAD
        + "    condition:\n"
        + "\n".join("      " + line for line in condition.strip().splitlines())
        + "\n"
        + extra
    )


# ---- match ------------------------------------------------------------------------------


def test_match_filters_on_attributes_and_groups(tmp_path: Path) -> None:
    e = engine_for(
        tmp_path,
        rule("""
type: match
when: {kind: access, type: door_forced_open, attributes: {door: [east, west]}}
group_by: [attributes.door]
"""),
    )
    assert e.process(ev("door_forced_open", 0, door="north")) == []
    [s] = e.process(ev("door_forced_open", 1, door="east"))
    assert s.kind == "new" and s.group_key == "door=east" and s.rule_id == "r"
    assert s.events[0].type == "door_forced_open"
    assert "match" in s.explanation
    assert e.process(ev("access_denied", 2, door="east")) == []


def test_match_expression_and_device_labels(tmp_path: Path) -> None:
    labels = {"cam1": {"place": "north-gate", "zone": "z9"}}
    write_rules(
        tmp_path,
        rule("""
type: match
when:
  kind: perimeter
  device: {place: north-gate}
  expr: "attributes.confidence is not None and attributes.confidence >= 0.8 and zone == 'z9'"
group_by: [zone]
"""),
    )
    e = Engine(load_rules(tmp_path), device_labels=labels.get)
    assert e.process(ev("intrusion", 0, "cam1", confidence=0.5)) == []
    assert e.process(ev("intrusion", 1, "cam2", confidence=0.9)) == []  # no labels
    [s] = e.process(ev("intrusion", 2, "cam1", confidence=0.9))
    assert s.group_key == "zone=z9" and s.zone == "z9"
    assert s.labels["device.place"] == "north-gate"


def test_expression_error_counts_and_does_not_match(tmp_path: Path) -> None:
    e = engine_for(
        tmp_path,
        rule("""
type: match
when: {kind: perimeter, expr: "attributes.confidence > 0.5"}
"""),
    )
    assert e.process(ev("intrusion", 0, "cam")) == []  # None > 0.5 raises
    assert e.counters.expr_errors == 1
    assert len(e.process(ev("intrusion", 1, "cam", confidence=0.9))) == 1


# ---- threshold --------------------------------------------------------------------------

THRESHOLD = """
type: threshold
when: {kind: access, type: access_denied}
count: 3
window: 60s
group_by: [device_id]
"""


def test_threshold_fires_at_n_within_window(tmp_path: Path) -> None:
    e = engine_for(tmp_path, rule(THRESHOLD))
    assert e.process(ev("access_denied", 0)) == []
    assert e.process(ev("access_denied", 30)) == []
    [s] = e.process(ev("access_denied", 60))  # inclusive: 60 s apart counts
    assert s.event_count == 3 and [x.occurred_at for x in s.events] == [at(0), at(30), at(60)]
    assert "threshold: 3 events" in s.explanation


def test_threshold_outside_window_and_other_group(tmp_path: Path) -> None:
    e = engine_for(tmp_path, rule(THRESHOLD))
    assert e.process(ev("access_denied", 0)) == []
    assert e.process(ev("access_denied", 30)) == []
    assert e.process(ev("access_denied", 40, "other")) == []
    assert e.process(ev("access_denied", 60.5)) == []  # first one slid out
    assert len(e.process(ev("access_denied", 61))) == 1


def test_threshold_out_of_order_within_tolerance(tmp_path: Path) -> None:
    e = engine_for(tmp_path, rule(THRESHOLD), late_tolerance_s=30)
    assert e.process(ev("access_denied", 100)) == []
    assert e.process(ev("access_denied", 120)) == []
    [s] = e.process(ev("access_denied", 95))  # late by 25 s: accepted
    assert s.fired_at == at(95)


# ---- sequence ---------------------------------------------------------------------------

SEQUENCE = """
type: sequence
steps:
  - {kind: perimeter, type: intrusion}
  - {kind: access, type: door_forced_open}
within: 2m
group_by: [zone]
"""


def test_sequence_a_then_b_same_zone(tmp_path: Path) -> None:
    e = engine_for(tmp_path, rule(SEQUENCE))
    assert e.process(ev("door_forced_open", 0, "door", zone="z1")) == []  # B before A: no
    assert e.process(ev("intrusion", 10, "cam", zone="z1")) == []
    assert e.process(ev("door_forced_open", 20, "door", zone="z2")) == []  # other zone
    [s] = e.process(ev("door_forced_open", 130, "door", zone="z1"))  # exactly 120 s
    assert [x.type for x in s.events] == ["intrusion", "door_forced_open"]
    assert s.group_key == "zone=z1" and "sequence" in s.explanation


def test_sequence_too_slow(tmp_path: Path) -> None:
    e = engine_for(tmp_path, rule(SEQUENCE))
    e.process(ev("intrusion", 0, "cam", zone="z1"))
    assert e.process(ev("door_forced_open", 121, "door", zone="z1")) == []


def test_sequence_late_first_step_completes_chain(tmp_path: Path) -> None:
    e = engine_for(tmp_path, rule(SEQUENCE), late_tolerance_s=30)
    assert e.process(ev("door_forced_open", 50, "door", zone="z1")) == []
    [s] = e.process(ev("intrusion", 40, "cam", zone="z1", received=51))
    assert [x.type for x in s.events] == ["intrusion", "door_forced_open"]


def test_sequence_of_three_steps(tmp_path: Path) -> None:
    e = engine_for(
        tmp_path,
        rule("""
type: sequence
steps:
  - {type: line_crossing}
  - {type: intrusion}
  - {type: door_forced_open}
within: 60s
group_by: [site]
"""),
    )
    e.process(ev("line_crossing", 0, "c"))
    assert e.process(ev("door_forced_open", 10, "d")) == []
    e.process(ev("intrusion", 20, "c"))
    assert len(e.process(ev("door_forced_open", 30, "d"))) == 1


def test_sequence_needs_distinct_events(tmp_path: Path) -> None:
    e = engine_for(
        tmp_path,
        rule("""
type: sequence
steps: [{type: intrusion}, {type: intrusion}]
within: 60s
group_by: [site]
"""),
    )
    assert e.process(ev("intrusion", 0, "c")) == []
    assert len(e.process(ev("intrusion", 10, "c"))) == 1


# ---- absence ----------------------------------------------------------------------------

ABSENCE = """
type: absence
when: {type: heartbeat}
for: 5m
group_by: [device_id]
"""


def test_absence_fires_at_deadline_and_resolves(tmp_path: Path) -> None:
    e = engine_for(tmp_path, rule(ABSENCE))
    e.process(ev("heartbeat", 0, "d1", kind="access"))
    e.process(ev("heartbeat", 60, "d1", kind="access"))
    assert e.advance(at(359)) == []
    [s] = e.advance(at(361))
    assert s.fired_at == at(360) and s.state == "firing" and s.device_id == "d1"
    assert "absence" in s.explanation
    assert e.advance(at(2000)) == []  # fires once
    [r] = e.process(ev("heartbeat", 2001, "d1", kind="access"))
    assert r.kind == "update" and r.state == "resolved" and r.signal_id == s.signal_id


def test_absence_uses_receive_time(tmp_path: Path) -> None:
    e = engine_for(tmp_path, rule(ABSENCE))
    # device clock an hour behind: still heard, not offline
    e.process(ev("heartbeat", -3600, "d1", kind="access", received=0))
    assert e.advance(at(299)) == []
    assert len(e.advance(at(300))) == 1


def test_absence_heap_stays_bounded_with_many_devices(tmp_path: Path) -> None:
    e = engine_for(tmp_path, rule(ABSENCE))
    tracemalloc.start()
    for round_ in range(5):
        for d in range(2000):
            e.process(ev("heartbeat", round_ * 60 + d / 1000, f"dev{d}", kind="sensor"))
        e.advance(at(round_ * 60 + 5))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    state = e._runtimes["r"].cond
    assert isinstance(state, AbsenceState)
    assert len(state.groups) == 2000
    assert len(state.heap) <= 2000
    assert peak < 50_000_000


# ---- duration ---------------------------------------------------------------------------

DURATION = """
type: duration
start: {kind: access, type: door_open}
end: {kind: access, type: door_closed}
for: 90s
group_by: [device_id, attributes.door]
"""


def test_duration_fires_when_held_and_resolves(tmp_path: Path) -> None:
    e = engine_for(tmp_path, rule(DURATION))
    e.process(ev("door_open", 0, door="A"))
    e.process(ev("door_open", 30, door="A"))  # still open; deadline from the first
    assert e.advance(at(89)) == []
    [s] = e.advance(at(90))
    assert s.fired_at == at(90) and s.title_en == "1 times"
    [r] = e.process(ev("door_closed", 200, door="A"))
    assert r.state == "resolved" and r.signal_id == s.signal_id


def test_duration_closed_in_time_does_not_fire(tmp_path: Path) -> None:
    e = engine_for(tmp_path, rule(DURATION))
    e.process(ev("door_open", 0, door="A"))
    e.process(ev("door_closed", 89, door="A"))
    assert e.advance(at(1000)) == []


def test_duration_end_arriving_before_start(tmp_path: Path) -> None:
    e = engine_for(tmp_path, rule(DURATION), late_tolerance_s=30)
    e.process(ev("door_closed", 10, door="A"))
    e.process(ev("door_open", 5, door="A", received=11))
    assert e.advance(at(1000)) == []


# ---- a device removed from the registry ------------------------------------------------


def test_forgotten_device_goes_neither_offline_nor_held_open(tmp_path: Path) -> None:
    """A device removed in the console: its absence and duration timers go, others stay."""
    absence = engine_for(tmp_path, rule(ABSENCE))
    for device in ("gone", "kept"):
        absence.process(ev("heartbeat", 0, device, kind="access"))
    assert absence.forget_device("gone") == 1
    assert [s.device_id for s in absence.advance(at(400))] == ["kept"]
    assert absence.forget_device("gone") == 0

    (tmp_path / "d").mkdir()
    duration = engine_for(tmp_path / "d", rule(DURATION))
    for device in ("gone", "kept"):
        duration.process(ev("door_open", 0, device, door="A"))
    assert duration.forget_device("gone") == 1
    assert [s.device_id for s in duration.advance(at(100))] == ["kept"]


def test_forget_device_keeps_groups_not_keyed_by_device(tmp_path: Path) -> None:
    """A site-wide absence last heard from the removed device still watches the site."""
    site_wide = ABSENCE.replace("group_by: [device_id]", "group_by: [site]")
    e = engine_for(tmp_path, rule(site_wide))
    e.process(ev("heartbeat", 0, "gone", kind="access"))
    assert e.forget_device("gone") == 0
    assert len(e.advance(at(400))) == 1
