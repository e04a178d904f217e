"""Schedules, watch lists, cooldown, inhibition, maintenance, panic, late and duplicate events."""

from __future__ import annotations

from pathlib import Path

from rules_helpers import at, engine_for, ev, write_rules

from rules.engine import Engine
from rules.loader import load_rules

MATCH_NIGHT = """
rules:
  - id: night
    severity: P2
    category: intrusion
    title: {zh: 夜间, en: Night}
    condition: {type: match, when: {type: intrusion}, group_by: [device_id]}
    cooldown: 0s
    schedule:
      windows:
        - {days: [mon, tue, wed, thu, fri], start: "22:00", end: "06:00"}
"""


def test_schedule_overnight_window_in_shanghai(tmp_path: Path) -> None:
    e = engine_for(tmp_path, MATCH_NIGHT)
    # T0 = Mon 20:00 Shanghai
    assert e.process(ev("intrusion", 0, "c")) == []
    assert e.counters.out_of_schedule == 1
    assert len(e.process(ev("intrusion", 2 * 3600, "c"))) == 1  # Mon 22:00
    assert len(e.process(ev("intrusion", 9 * 3600, "c"))) == 1  # Tue 05:00 (wraps)
    assert e.process(ev("intrusion", 10 * 3600, "c")) == []  # Tue 06:00
    # Fri 22:00 → Sat 05:00 is still Friday's window; Sat 22:00 is not a window
    assert len(e.process(ev("intrusion", (4 * 24 + 9) * 3600, "c"))) == 1
    assert e.process(ev("intrusion", (5 * 24 + 2) * 3600, "c")) == []


def test_schedule_other_timezone(tmp_path: Path) -> None:
    e = engine_for(
        tmp_path, MATCH_NIGHT.replace("      windows:", "      timezone: UTC\n      windows:")
    )
    assert e.process(ev("intrusion", 0, "c")) == []  # Mon 12:00 UTC
    assert len(e.process(ev("intrusion", 10 * 3600, "c"))) == 1  # Mon 22:00 UTC


WATCH = """
watchlists:
  - {id: plates, file: plates.txt}
  - {id: cards, values: [abc], normalize: none, provider: true}
rules:
  - id: wl
    severity: P2
    category: vehicle
    title: {zh: "布控 {plate}", en: "Listed {plate}"}
    condition:
      type: match
      when: {kind: gate, watchlist: {list: plates, field: attributes.plate}}
      group_by: [attributes.plate]
    cooldown: 0s
  - id: card
    severity: P3
    category: access
    title: {zh: 卡, en: Card}
    condition:
      type: match
      when: {kind: access, expr: "in_list('cards', attributes.card_ref)"}
    cooldown: 0s
"""


def test_watchlists_from_file_inline_and_provider(tmp_path: Path) -> None:
    (tmp_path / "plates.txt").write_text("# list\n浙A12345\n  甘B00001 , note\n", encoding="utf-8")
    write_rules(tmp_path, WATCH)
    e = Engine(load_rules(tmp_path, watchlist_provider=lambda name: ["fromdb"]))
    assert e.process(ev("plate_read", 0, "g", plate="浙B99999")) == []
    [s] = e.process(ev("plate_read", 1, "g", plate="浙a12345"))
    assert s.title_zh == "布控 浙a12345"
    assert len(e.process(ev("plate_read", 2, "g", plate="甘B00001"))) == 1
    assert len(e.process(ev("access_granted", 3, "a", card_ref="fromdb"))) == 1
    assert len(e.process(ev("access_granted", 4, "a", card_ref="abc"))) == 1
    assert e.process(ev("access_granted", 5, "a", card_ref="ABC")) == []  # normalize: none


COOLDOWN = """
rules:
  - id: forced
    severity: P2
    category: access
    title: {zh: 强开, en: Forced}
    condition: {type: match, when: {type: door_forced_open}, group_by: [device_id]}
    cooldown: 5m
"""


def test_cooldown_attaches_later_hits_as_updates(tmp_path: Path) -> None:
    e = engine_for(tmp_path, COOLDOWN)
    [a] = e.process(ev("door_forced_open", 0, "d1"))
    [b] = e.process(ev("door_forced_open", 10, "d1"))
    [c] = e.process(ev("door_forced_open", 20, "d2"))
    assert a.kind == "new" and b.kind == "update" and b.signal_id == a.signal_id
    assert b.event_count == 2 and len(b.events) == 1
    assert c.kind == "new" and c.signal_id != a.signal_id
    [d] = e.process(ev("door_forced_open", 300, "d1"))  # next period
    assert d.kind == "new" and d.signal_id != a.signal_id


OFFLINE = """
rules:
  - id: offline
    severity: P3
    category: device-health
    title: {zh: "离线 {device_id}", en: "Offline {device_id}"}
    condition: {type: absence, when: {}, for: 60s}
  - id: forced
    severity: P2
    category: access
    title: {zh: 强开, en: Forced}
    condition: {type: match, when: {type: door_forced_open}}
  - id: panic
    severity: P1
    category: panic
    title: {zh: 报警, en: Panic}
    condition: {type: match, when: {type: panic}}
    cancel: {when: {type: panic_cancel}, within: 30s, severity: P3}
inhibit:
  - source: {rules: [offline]}
    target: {rules: [offline]}
    equal: [site, device_id=device.recorder]
"""


def test_offline_recorder_inhibits_its_cameras(tmp_path: Path) -> None:
    labels = {"cam1": {"recorder": "nvr"}, "cam2": {"recorder": "nvr"}, "cam3": {}}
    write_rules(tmp_path, OFFLINE)
    e = Engine(load_rules(tmp_path), device_labels=labels.get)
    e.process(ev("heartbeat", 0, "nvr", kind="sensor"))
    for cam in ("cam1", "cam2", "cam3"):
        e.process(ev("heartbeat", 5, cam, kind="perimeter"))
    fired = e.advance(at(100))
    assert sorted(s.device_id or "" for s in fired) == ["cam3", "nvr"]
    assert e.counters.inhibited == 2
    assert {r.id: r.stats.inhibited for r in e.status()}["offline"] == 2


def test_maintenance_inhibits_but_never_panic(tmp_path: Path) -> None:
    write_rules(
        tmp_path,
        OFFLINE
        + """
maintenance:
  - {devices: [d1], until: "2025-01-06T21:00:00+08:00", reason: repair}
""",
    )
    e = Engine(load_rules(tmp_path))
    assert e.process(ev("door_forced_open", 0, "d1")) == []
    assert len(e.process(ev("panic", 1, "d1", kind="alarm"))) == 1
    assert len(e.process(ev("door_forced_open", 3601, "d1"))) == 1  # maintenance over
    e.set_maintenance("d2", None)
    assert e.process(ev("door_forced_open", 3602, "d2")) == []
    e.set_maintenance("d2", None, on=False)
    assert len(e.process(ev("door_forced_open", 3603, "d2"))) == 1


def test_panic_is_never_suppressed(tmp_path: Path) -> None:
    e = engine_for(tmp_path, OFFLINE)
    first = e.process(ev("panic", 0, "p", kind="alarm"))
    second = e.process(ev("panic", 1, "p", kind="alarm"))
    assert [s.kind for s in first + second] == ["new", "new"]
    assert first[0].signal_id != second[0].signal_id


def test_panic_cancel_within_grace_downgrades(tmp_path: Path) -> None:
    e = engine_for(tmp_path, OFFLINE)
    [p] = e.process(ev("panic", 0, "p", kind="alarm"))
    [c] = e.process(ev("panic_cancel", 20, "p", kind="alarm"))
    assert c.kind == "update" and c.state == "cancelled" and c.signal_id == p.signal_id
    assert p.severity == "P1" and c.severity == "P3"
    assert "signal kept" in c.explanation
    assert e.process(ev("panic_cancel", 25, "p", kind="alarm")) == []  # once


def test_panic_cancel_after_grace_keeps_p1(tmp_path: Path) -> None:
    e = engine_for(tmp_path, OFFLINE)
    e.process(ev("panic", 0, "p", kind="alarm"))
    assert e.process(ev("panic_cancel", 31, "p", kind="alarm")) == []
    [s] = [r for r in e.status() if r.id == "panic"]
    assert s.active_signals == 1


def test_late_events_rejected_but_panic_kept(tmp_path: Path) -> None:
    e = engine_for(tmp_path, OFFLINE, late_tolerance_s=30)
    e.process(ev("heartbeat", 1000, "x", kind="sensor"))
    assert e.process(ev("door_forced_open", 900, "d1", received=1000)) == []
    assert e.counters.late == 1
    assert len(e.process(ev("panic", 900, "p", kind="alarm", received=1000))) == 1
    assert e.counters.late == 2


def test_future_device_clock_cannot_push_watermark(tmp_path: Path) -> None:
    e = engine_for(tmp_path, OFFLINE, late_tolerance_s=30, future_skew_s=60)
    e.process(ev("heartbeat", 100_000, "bad", kind="sensor", received=0))
    assert e.watermark == at(60).timestamp()
    assert len(e.process(ev("door_forced_open", 40, "d1"))) == 1


def test_duplicates_never_count_twice(tmp_path: Path) -> None:
    e = engine_for(tmp_path, OFFLINE)
    one = ev("door_forced_open", 0, "d1", event_id="same")
    assert len(e.process(one)) == 1
    assert e.process(one) == []
    assert e.counters.duplicates == 1


def test_disable_and_enable(tmp_path: Path) -> None:
    e = engine_for(tmp_path, OFFLINE)
    assert e.set_enabled("forced", False)
    assert e.process(ev("door_forced_open", 0, "d1")) == []
    assert e.set_enabled("forced", True)
    assert len(e.process(ev("door_forced_open", 1, "d1"))) == 1
    assert not e.set_enabled("nope", True)
