"""Property tests of window semantics: shuffled, duplicated and late events, boundary times."""

from __future__ import annotations

import tempfile
from itertools import pairwise
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rules_helpers import at, ev, write_rules

from gateway.events import Event
from rules.engine import Engine, EngineSettings
from rules.loader import load_rules
from rules.ruleset import RuleSet

SETTINGS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def ruleset(text: str) -> RuleSet:
    with tempfile.TemporaryDirectory() as tmp:
        return load_rules(write_rules(Path(tmp), text))


def threshold_rules(count: int, window: int) -> RuleSet:
    return ruleset(f"""
    rules:
      - id: t
        severity: P3
        category: access
        title: {{zh: 阈值, en: Threshold}}
        condition:
          type: threshold
          when: {{type: access_denied}}
          count: {count}
          window: {window}s
          group_by: [device_id]
        cooldown: 7d
    """)


def oracle_threshold(events: list[tuple[int, str]], count: int, window: int) -> set[str]:
    """Groups where some ``count`` events lie within ``window`` seconds (inclusive)."""
    fired = set()
    for group in {g for _, g in events}:
        times = sorted(t for t, g in events if g == group)
        if any(times[i + count - 1] - times[i] <= window for i in range(len(times) - count + 1)):
            fired.add(f"device_id={group}")
    return fired


def build(events: list[tuple[int, str]]) -> list[Event]:
    return [ev("access_denied", t, g, event_id=f"x{i}") for i, (t, g) in enumerate(events)]


points = st.lists(
    st.tuples(st.integers(0, 300), st.sampled_from(["a", "b", "c"])), min_size=0, max_size=30
)


@SETTINGS
@given(points, st.integers(2, 5), st.sampled_from([1, 10, 30, 60, 120]), st.randoms())
def test_threshold_any_order_with_duplicates(
    events: list[tuple[int, str]], count: int, window: int, rnd: object
) -> None:
    feed = build(events)
    feed += [feed[i] for i in range(0, len(feed), 3)]  # redeliveries
    rnd.shuffle(feed)  # type: ignore[attr-defined]
    engine = Engine(threshold_rules(count, window), EngineSettings(late_tolerance_s=1000))
    signals = [s for e in feed for s in engine.process(e)]
    new = [s.group_key for s in signals if s.kind == "new"]
    assert len(new) == len(set(new))  # one signal per group (cooldown 7d)
    assert set(new) == oracle_threshold(events, count, window)
    assert engine.counters.duplicates == len(feed) - len(events)


@SETTINGS
@given(points, st.integers(2, 4), st.sampled_from([5, 30, 60]), st.integers(0, 60), st.randoms())
def test_threshold_late_events_are_rejected_consistently(
    events: list[tuple[int, str]], count: int, window: int, tolerance: int, rnd: object
) -> None:
    feed = build(events)
    rnd.shuffle(feed)  # type: ignore[attr-defined]
    engine = Engine(threshold_rules(count, window), EngineSettings(late_tolerance_s=tolerance))
    accepted: list[tuple[int, str]] = []
    watermark = float("-inf")
    fired: set[str] = set()
    for e in feed:
        t = int((e.occurred_at - at(0)).total_seconds())
        if t >= watermark - tolerance:
            accepted.append((t, e.device_id))
        watermark = max(watermark, t)
        fired |= {s.group_key for s in engine.process(e) if s.kind == "new"}
    assert engine.counters.late == len(feed) - len(accepted)
    assert fired == oracle_threshold(accepted, count, window)


def sequence_rules(within: int) -> RuleSet:
    return ruleset(f"""
    rules:
      - id: s
        severity: P1
        category: intrusion
        title: {{zh: 序列, en: Sequence}}
        condition:
          type: sequence
          steps: [{{type: intrusion}}, {{type: door_forced_open}}]
          within: {within}s
          group_by: [zone]
        cooldown: 7d
    """)


@SETTINGS
@given(
    st.lists(
        st.tuples(st.integers(0, 200), st.booleans(), st.sampled_from(["z1", "z2"])), max_size=20
    ),
    st.sampled_from([1, 15, 60]),
    st.randoms(),
)
def test_sequence_any_order(steps: list[tuple[int, bool, str]], within: int, rnd: object) -> None:
    feed = [
        ev("intrusion" if first else "door_forced_open", t, "d", zone=z, event_id=f"s{i}")
        for i, (t, first, z) in enumerate(steps)
    ]
    rnd.shuffle(feed)  # type: ignore[attr-defined]
    engine = Engine(sequence_rules(within), EngineSettings(late_tolerance_s=1000))
    fired = {s.group_key for e in feed for s in engine.process(e) if s.kind == "new"}
    expected = {
        f"zone={z}"
        for z in ("z1", "z2")
        if any(
            0 <= tb - ta <= within
            for ta, fa, za in steps
            if fa and za == z
            for tb, fb, zb in steps
            if not fb and zb == z
        )
    }
    assert fired == expected


@SETTINGS
@given(
    st.lists(st.integers(0, 2000), min_size=1, max_size=25),
    st.sampled_from([30, 60, 300]),
    st.integers(0, 600),
)
def test_absence_fires_once_per_silent_gap(times: list[int], for_s: int, tail: int) -> None:
    rs = ruleset(f"""
    rules:
      - id: offline
        severity: P3
        category: device-health
        title: {{zh: 离线, en: Offline}}
        condition: {{type: absence, when: {{type: heartbeat}}, for: {for_s}s}}
        cooldown: 0s
    """)
    engine = Engine(rs)
    times = sorted(times)
    fired = []
    for i, t in enumerate(times):
        fired += engine.advance(at(t))
        fired += engine.process(ev("heartbeat", t, "d", kind="sensor", event_id=f"h{i}"))
    fired += engine.advance(at(times[-1] + tail))
    firing = [s for s in fired if s.state == "firing"]
    gaps = [b - a for a, b in pairwise(times)] + [tail]
    assert len(firing) == sum(1 for g in gaps if g >= for_s)
    assert all(
        s.fired_at == at(t + for_s)
        for s, t in zip(
            firing, [a for a, g in zip(times, gaps, strict=True) if g >= for_s], strict=True
        )
    )
