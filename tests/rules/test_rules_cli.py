"""``lianfang rules check`` and ``lianfang rules test`` (on the sub-app)."""

from __future__ import annotations

import json
from pathlib import Path

from rules_helpers import DEFAULT_RULES, ev
from typer.testing import CliRunner

from gateway.cli.rules_cmd import app

runner = CliRunner()


def write_events(path: Path, *events: object) -> Path:
    path.write_text(
        "\n".join(e.model_dump_json() for e in events) + "\n",  # type: ignore[attr-defined]
        encoding="utf-8",
    )
    return path


def test_check_ok() -> None:
    result = runner.invoke(app, ["check", str(DEFAULT_RULES)])
    assert result.exit_code == 0, result.output
    assert "ok: 16 rules in 6 file(s)" in result.output


def test_check_reports_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "rules:\n  - id: x\n    severity: P2\n    category: access\n"
        "    title: {zh: x, en: x}\n    condition: {type: match, when: {}, extra: 1}\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["check", str(tmp_path)])
    assert result.exit_code == 1
    assert "bad.yaml: rule x: rules[0].condition.extra: unknown key (typo?)" in result.output


def test_replay_prints_signals(tmp_path: Path) -> None:
    events = write_events(tmp_path / "ev.jsonl", ev("panic", 0, "b1"), ev("panic_cancel", 10, "b1"))
    result = runner.invoke(app, ["test", str(DEFAULT_RULES), str(events)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [(x["kind"], x["severity"], x["state"]) for x in lines] == [
        ("new", "P1", "firing"),
        ("update", "P3", "cancelled"),
    ]
    assert lines[0]["fired_at"] == "2025-01-06T12:00:00Z"


def test_replay_compares_with_expected(tmp_path: Path) -> None:
    events = write_events(
        tmp_path / "ev.jsonl",
        ev("heartbeat", 0, "d1", kind="access"),
        ev("door_open", 10, "d1", door="A"),
    )
    expected = tmp_path / "expected.jsonl"
    expected.write_text(
        '{"rule_id": "door_held_open", "kind": "new", "fired_at": "2025-01-06T12:01:40Z"}\n'
        '{"rule_id": "device_offline", "severity": "P3", "group_key": "device_id=d1"}\n',
        encoding="utf-8",
    )
    args = [
        "test",
        str(DEFAULT_RULES),
        str(events),
        "--expect",
        str(expected),
        "--until",
        "2025-01-06T20:10:00+08:00",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "ok: 2 signal(s) as expected" in result.output

    expected.write_text('{"rule_id": "door_held_open", "severity": "P1"}\n', encoding="utf-8")
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert "severity: expected 'P1', got 'P3'" in result.output
    assert "unexpected" in result.output  # the offline signal was not expected


def test_replay_bad_event_line(tmp_path: Path) -> None:
    events = tmp_path / "ev.jsonl"
    events.write_text('{"event_id": "x"}\n', encoding="utf-8")
    result = runner.invoke(app, ["test", str(DEFAULT_RULES), str(events)])
    assert result.exit_code == 1 and "line 1" in result.output


def test_until_needs_a_zone(tmp_path: Path) -> None:
    events = write_events(tmp_path / "ev.jsonl", ev("panic", 0, "b1"))
    result = runner.invoke(app, ["test", str(DEFAULT_RULES), str(events), "--until", "2025-01-06"])
    assert result.exit_code == 2
