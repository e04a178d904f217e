"""Replay tests of the default rule set (config/rules): one or more cases per rule."""

from __future__ import annotations

from datetime import datetime

import pytest
from rules_helpers import DEFAULT_RULES, at, ev

from gateway.events import Event
from rules.engine import Engine
from rules.loader import load_rules
from rules.replay import replay

NIGHT = 3 * 3600  # T0 + 3 h = Monday 23:00 in Shanghai (T0 is 20:00)

Expected = list[tuple[str, str, str, str]]  # kind, rule_id, severity, state

CASES: dict[str, tuple[list[Event], datetime | None, Expected]] = {
    "panic": (
        [ev("panic", 0, "btn1", household="3-201")],
        None,
        [("new", "panic_button", "P1", "firing")],
    ),
    "panic cancelled within grace is downgraded, not deleted": (
        [ev("panic", 0, "btn1", household="3-201"), ev("panic_cancel", 40, "btn1")],
        None,
        [("new", "panic_button", "P1", "firing"), ("update", "panic_button", "P3", "cancelled")],
    ),
    "panic cancelled too late stays P1": (
        [ev("panic", 0, "btn1"), ev("panic_cancel", 61, "btn1")],
        None,
        [("new", "panic_button", "P1", "firing")],
    ),
    "two presses are two signals": (
        [ev("panic", 0, "btn1"), ev("panic", 2, "btn1")],
        None,
        [("new", "panic_button", "P1", "firing"), ("new", "panic_button", "P1", "firing")],
    ),
    "a duress card or emergency button at a door is a panic too": (
        [ev("panic", 0, "acs-1", kind="access", door="south-ped")],
        None,
        [("new", "panic_at_device", "P1", "firing")],
    ),
    "door forced open": (
        [
            ev("door_forced_open", 0, "door1", door="B2-east"),
            ev("door_forced_open", 30, "door1", door="B2-east"),
        ],
        None,
        [
            ("new", "door_forced_open", "P2", "firing"),
            ("update", "door_forced_open", "P2", "firing"),
        ],
    ),
    "door held open then closed": (
        [
            ev("door_open", 0, "door1", door="B2"),
            ev("door_open", 10, "door2", door="B3"),
            ev("door_closed", 40, "door2", door="B3"),
            ev("heartbeat", 100, "door1", kind="access"),
            ev("door_closed", 120, "door1", door="B2"),
        ],
        None,
        [("new", "door_held_open", "P3", "firing"), ("update", "door_held_open", "P3", "resolved")],
    ),
    "repeated denied access at one door": (
        [ev("access_denied", i * 10, "door1", door="B2") for i in range(5)]
        + [ev("access_denied", i * 10, "door2", door="B3") for i in range(4)],
        None,
        [("new", "access_denied_repeated", "P3", "firing")],
    ),
    "perimeter intrusion at night only": (
        [
            ev("intrusion", 0, "cam1", zone="north"),  # 20:00: daytime rules only
            ev("line_crossing", NIGHT, "cam1", zone="north", received=NIGHT),
            ev("heartbeat", NIGHT + 10, "cam1", kind="perimeter"),
        ],
        None,
        [
            ("new", "device_offline", "P3", "firing"),  # silent for three hours
            ("update", "device_offline", "P3", "resolved"),
            ("new", "perimeter_intrusion_night", "P2", "firing"),
        ],
    ),
    "intrusion then door alarm in the same zone escalates": (
        [
            ev("intrusion", NIGHT, "cam1", zone="north"),
            ev("door_forced_open", NIGHT + 60, "door1", zone="north", door="N1"),
            ev("door_forced_open", NIGHT + 70, "door9", zone="south", door="S1"),
        ],
        None,
        [
            ("new", "perimeter_intrusion_night", "P2", "firing"),
            ("new", "door_forced_open", "P2", "firing"),
            ("new", "perimeter_then_door", "P1", "firing"),
            ("new", "door_forced_open", "P2", "firing"),
        ],
    ),
    "watch-listed plate at a gate": (
        [
            ev("plate_read", 0, "gate1", plate="浙B1234Z", lane="in-1"),
            ev("plate_read", 5, "gate1", plate="浙B7777Q", lane="in-1"),
        ],
        None,
        [("new", "watchlist_plate", "P2", "firing")],
    ),
    "repeated vehicle denials at a gate": (
        [ev("vehicle_denied", i * 60, "gate1", plate=f"浙A1000{i}") for i in range(3)],
        None,
        [("new", "vehicle_denied_repeated", "P3", "firing")],
    ),
    "camera tamper and video loss": (
        [ev("tamper", 0, "cam1", kind="perimeter"), ev("video_loss", 5, "cam2")],
        None,
        [("new", "camera_tamper", "P2", "firing"), ("new", "camera_tamper", "P2", "firing")],
    ),
    "device offline and back": (
        [
            ev("heartbeat", 0, "door1", kind="access"),
            ev("heartbeat", 60, "door1", kind="access"),
            ev("heartbeat", 500, "door1", kind="access"),
        ],
        None,
        [("new", "device_offline", "P3", "firing"), ("update", "device_offline", "P3", "resolved")],
    ),
    "panic button offline after a day": (
        [ev("heartbeat", 0, "btn1", kind="alarm", household="3-201")],
        at(27 * 3600),
        [("new", "panic_button_offline", "P3", "firing")],
    ),
    "alarm panel: fire, burglary, trouble; restores and routine raise nothing": (
        [
            ev(
                "fire",
                0,
                "panel1",
                kind="alarm",
                zone="007",
                household="3-201",
                extra={"code": "1111", "label": "smoke"},
            ),
            ev("intrusion", 10, "panel1", kind="alarm", zone="004", extra={"label": "burglary"}),
            ev("trouble", 20, "panel1", kind="alarm", extra={"code": "1301", "label": "AC loss"}),
            ev("restore", 30, "panel1", kind="alarm", zone="007"),
            ev("armed", 40, "panel1", kind="alarm"),
            ev("heartbeat", 50, "panel1", kind="alarm"),
        ],
        None,
        [
            ("new", "panel_fire", "P1", "firing"),
            ("new", "panel_burglary", "P2", "firing"),
            ("new", "panel_trouble", "P3", "firing"),
        ],
    ),
    "panic button battery low": (
        [
            ev("battery_low", 0, "btn1", kind="alarm", household="3-201", battery_pct=9),
            ev("heartbeat", 60, "btn1", kind="alarm", battery_pct=8),
            ev("heartbeat", 120, "btn2", kind="alarm", battery_pct=80),
        ],
        None,
        [
            ("new", "panic_battery_low", "P4", "firing"),
            ("update", "panic_battery_low", "P4", "firing"),
        ],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_default_rule_set_replay(name: str) -> None:
    events, until, expected = CASES[name]
    signals = replay(Engine(load_rules(DEFAULT_RULES)), events, until)
    got = [(s.kind, s.rule_id, s.severity.value, s.state) for s in signals]
    assert got == expected


def test_every_default_rule_has_a_replay_case() -> None:
    covered = {rule for _, _, exp in CASES.values() for _, rule, _, _ in exp}
    assert covered == {r.id for r in load_rules(DEFAULT_RULES).rules}


def test_titles_are_rendered_in_both_languages() -> None:
    events, until, _ = CASES["panic"]
    [s] = replay(Engine(load_rules(DEFAULT_RULES)), events, until)
    assert s.title_zh == "一键报警：3-201 户按下报警按钮"
    assert s.title_en == "Panic alarm pressed by household 3-201"
    assert s.labels["team"] == "police"


def test_every_shipped_rule_describes_itself_in_chinese() -> None:
    """The console shows ``description_zh`` (English only where a rule gives none): every
    shipped rule gives one, and it is Chinese."""
    rules = [compiled.rule for compiled in load_rules(DEFAULT_RULES).rules]
    assert rules
    for rule in rules:
        assert rule.description and rule.description_zh, rule.id
        assert any("\u4e00" <= ch <= "\u9fff" for ch in rule.description_zh), rule.id
