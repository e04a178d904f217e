"""One policy for late events, shared by the live engine, ``rules test`` and the API: a captured
payload with an old timestamp is late wherever it is evaluated, counted and logged, used by
panic and absence rules only; ``--as-recorded`` replays it with its own time on purpose."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from rules_helpers import ev, write_rules
from typer.testing import CliRunner

from gateway.api.schemas import EventPublic
from gateway.cli.rules_cmd import app
from rules.engine import Engine, EngineSettings
from rules.loader import load_rules

FORCED = """
rules:
  - id: forced
    severity: P2
    category: access
    title: {zh: 强行开门, en: Door forced}
    condition: {type: match, when: {type: door_forced_open}, group_by: [device_id]}
    cooldown: 0s
  - id: panic
    severity: P1
    category: panic
    title: {zh: 一键报警, en: Panic}
    condition: {type: match, when: {type: panic}}
"""
DAY = 86_400


def engine(tmp_path: Path, **settings: object) -> Engine:
    return Engine(load_rules(write_rules(tmp_path, FORCED)), EngineSettings(**settings))  # type: ignore[arg-type]


def test_an_old_capture_is_late_even_as_the_first_event(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    e = engine(tmp_path)
    caplog.set_level(logging.WARNING, logger="rules.engine")
    # captured a day ago, sent today: no other event has moved the watermark yet
    assert e.process(ev("door_forced_open", 0, "door-1", received=DAY)) == []
    assert e.counters.late == 1
    assert "late door_forced_open event from door-1 (arrived 86400 s after" in caplog.text
    e.process(ev("door_forced_open", 1, "door-1", received=DAY))
    assert caplog.text.count("from door-1") == 1  # once per device
    [panic] = e.process(ev("panic", 2, "btn-1", kind="alarm", received=DAY))
    assert panic.severity == "P1"  # a delayed panic is still a panic
    assert e.counters.late == 3


def test_as_recorded_judges_by_device_time_alone(tmp_path: Path) -> None:
    e = engine(tmp_path, judge_arrival=False)
    assert len(e.process(ev("door_forced_open", 0, "door-1", received=DAY))) == 1
    assert e.counters.late == 0


def test_a_clock_ahead_makes_no_other_event_late(tmp_path: Path) -> None:
    e = engine(tmp_path)  # the shipped defaults
    e.process(ev("heartbeat", 120, "fast-clock", kind="sensor", received=0))  # 2 min ahead
    assert len(e.process(ev("door_forced_open", 1, "door-1", received=1))) == 1
    assert e.counters.late == 0


def test_rules_test_follows_the_live_policy_and_the_config(tmp_path: Path) -> None:
    rules = write_rules(tmp_path, FORCED)
    events = tmp_path / "captured.jsonl"
    events.write_text(ev("door_forced_open", 0, "door-1", received=600).model_dump_json() + "\n")
    live = CliRunner().invoke(app, ["test", str(rules), str(events)])
    assert live.exit_code == 0, live.output
    assert "forced" not in live.stdout
    assert "1 late event(s)" in live.stderr and "tolerance 30 s" in live.stderr

    recorded = CliRunner().invoke(app, ["test", str(rules), str(events), "--as-recorded"])
    [signal] = [json.loads(line) for line in recorded.stdout.splitlines()]
    assert signal["rule_id"] == "forced"

    config = tmp_path / "lianfang.yaml"
    config.write_text("rules: {late_tolerance_s: 900}\n", encoding="utf-8")
    tolerant = CliRunner().invoke(app, ["test", str(rules), str(events), "--config", str(config)])
    assert json.loads(tolerant.stdout.splitlines()[0])["rule_id"] == "forced"


def test_every_event_in_the_api_says_how_late_it_arrived() -> None:
    late = EventPublic.from_event(ev("door_forced_open", 0, "door-1", received=90))
    assert late.model_dump()["arrival_delay_s"] == 90.0
    assert EventPublic.from_event(ev("door_open", 5, "door-1")).arrival_delay_s == 0.0
