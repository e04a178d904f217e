"""``lianfang profile test`` / ``list`` through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli.profile_cmd import app

ROOT = Path(__file__).resolve().parent.parent
PROFILES = ROOT / "config" / "profiles"
SAMPLES = Path(__file__).resolve().parent / "profiles"
runner = CliRunner()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--profiles-dir", str(PROFILES)])
    return result.exit_code, result.stdout, result.stderr


def test_sample_case_file_prints_the_events() -> None:
    code, out, _ = run(
        "test", "hikvision-acs", str(SAMPLES / "hikvision-acs" / "card_granted.yaml")
    )
    assert code == 0
    (event,) = json.loads(out)
    assert event["event_id"] == "hikvision-acs:door-3-1:7781"
    assert event["type"] == "access_granted"
    assert event["site"] == "lianhua-xiaoqu"  # from the case's registry
    assert event["received_at"] == "2026-11-22T13:05:00Z"  # the samples' fixed receive time
    assert "3506421987" not in out  # the card number never shows


def test_several_events_from_one_message() -> None:
    case = SAMPLES / "zigbee2mqtt" / "contact_open_tamper_battery_low.yaml"
    code, out, _ = run("test", "zigbee2mqtt", str(case))
    assert code == 0
    assert [e["type"] for e in json.loads(out)] == ["tamper", "battery_low", "door_open"]


def test_raw_payload_needs_a_topic(tmp_path: Path) -> None:
    payload = tmp_path / "press.json"
    payload.write_text('{"action": "emergency", "battery": 80}')
    code, _, err = run("test", "zigbee2mqtt", str(payload))
    assert code == 1
    assert "give the topic it arrived on with --topic" in err


def test_raw_payload_with_topic_and_registry(tmp_path: Path) -> None:
    payload = tmp_path / "press.json"
    payload.write_text('{"action": "emergency", "battery": 80}')
    code, out, _ = run(
        "test",
        "zigbee2mqtt",
        str(payload),
        "--topic",
        "zigbee2mqtt/sos-1",
        "--registry-device",
        "sos-1=lianhua-xiaoqu:alarm",
    )
    assert code == 0, out
    (event,) = json.loads(out)
    assert (event["type"], event["site"], event["kind"]) == ("panic", "lianhua-xiaoqu", "alarm")
    assert event["attributes"]["battery_pct"] == 80


def test_raw_text_payload(tmp_path: Path) -> None:
    payload = tmp_path / "availability.txt"
    payload.write_text("offline\n")
    code, out, _ = run(
        "test",
        "zigbee2mqtt",
        str(payload),
        "--topic",
        "zigbee2mqtt/sos-1/availability",
        "--registry-device",
        "sos-1=lianhua-xiaoqu:alarm",
    )
    assert code == 0
    assert json.loads(out)[0]["type"] == "offline"


def test_unknown_device_says_how_to_register_it(tmp_path: Path) -> None:
    payload = tmp_path / "press.json"
    payload.write_text('{"action": "emergency"}')
    code, _, err = run("test", "zigbee2mqtt", str(payload), "--topic", "zigbee2mqtt/sos-9")
    assert code == 1
    assert "device 'sos-9' is not registered" in err
    assert "--registry-device sos-9=SITE:KIND" in err


def test_no_match_prints_the_reason() -> None:
    case = SAMPLES / "hikvision-acs" / "reject_unmapped_code.yaml"
    code, out, err = run("test", "hikvision-acs", str(case))
    assert code == 1
    assert out == ""
    assert "no event: acs-event: type code '5:38' is not in the type map" in err


def test_mapping_error_prints_the_reason() -> None:
    case = SAMPLES / "vzenith-lpr" / "reject_confidence_out_of_range.yaml"
    code, _, err = run("test", "vzenith-lpr", str(case))
    assert code == 1
    assert "invalid event: plate: attributes.gate.confidence" in err


def test_profile_by_path(tmp_path: Path) -> None:
    profile = tmp_path / "acme.yaml"
    profile.write_text(
        "profile: acme\nname: Acme\nmappings:\n"
        "  - {id: beat, topic: 'acme/{site}/{device}', device_id: topic.device,"
        " site: topic.site, kind: sensor, type: heartbeat}\n"
    )
    payload = tmp_path / "beat.json"
    payload.write_text("{}")
    code, out, _ = run("test", str(profile), str(payload), "--topic", "acme/s1/d1")
    assert code == 0
    assert json.loads(out)[0]["source"] == "acme"


def test_topic_the_profile_does_not_take(tmp_path: Path) -> None:
    payload = tmp_path / "p.json"
    payload.write_text("{}")
    code, _, err = run("test", "frigate", str(payload), "--topic", "frigate/reviews")
    assert code == 1
    assert "profile frigate does not take topic frigate/reviews (its topics: frigate/events)" in err


def test_unknown_profile_lists_the_known(tmp_path: Path) -> None:
    payload = tmp_path / "p.json"
    payload.write_text("{}")
    code, _, err = run("test", "hikvison", str(payload), "--topic", "x")
    assert code == 1
    assert "no profile 'hikvison'" in err
    assert "hikvision-acs" in err


def test_broken_profile_file_names_file_and_key(tmp_path: Path) -> None:
    profile = tmp_path / "bad.yaml"
    profile.write_text(
        "profile: bad\nname: Bad\nmappings:\n"
        "  - {id: m, topic: 'b/{device}', device_id: topic.device, type: heartbeat,"
        " attributes: {zone: 'payload.[x'}}\n"
    )
    payload = tmp_path / "p.json"
    payload.write_text("{}")
    code, _, err = run("test", str(profile), str(payload), "--topic", "b/d")
    assert code == 1
    assert "bad.yaml: mappings[0].attributes.zone" in err


def test_malformed_json_is_rejected_before_the_profile(tmp_path: Path) -> None:
    payload = tmp_path / "p.json"
    payload.write_text('{"action": ')
    code, _, err = run("test", "zigbee2mqtt", str(payload), "--topic", "zigbee2mqtt/sos-1")
    assert code == 1
    assert "payload rejected before the profile (json)" in err


@pytest.mark.parametrize("entry", ["sos-1", "sos-1=site", "sos-1=site:robot", "=site:alarm"])
def test_bad_registry_option(tmp_path: Path, entry: str) -> None:
    payload = tmp_path / "p.json"
    payload.write_text("{}")
    code, _, err = run(
        "test",
        "zigbee2mqtt",
        str(payload),
        "--topic",
        "zigbee2mqtt/sos-1",
        "--registry-device",
        entry,
    )
    assert code == 2
    assert "--registry-device" in err


def test_list_shows_profiles_and_subscriptions() -> None:
    result = runner.invoke(app, ["list", "--profiles-dir", str(PROFILES)])
    assert result.exit_code == 0
    out = result.stdout
    assert "hikvision-acs  Hikvision access controller" in out
    assert "    hikvision/+/event  (acs-event, heartbeat)" in out
    assert "    zigbee2mqtt/+/availability  (availability)" in out
    assert "    frigate/events  (new, zone-entered, end)" in out


def test_list_reports_config_errors(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text("profile: x\nname: X\nmappings: []\n")
    result = runner.invoke(app, ["list", "--profiles-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "x.yaml: mappings" in result.stderr


def test_list_from_another_folder_names_the_path_it_looked_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 1
    assert f"looked in {tmp_path / 'config' / 'profiles'}" in result.stderr
    assert "--profiles-dir" in result.stderr
    by_id = runner.invoke(app, ["test", "lianfang", str(tmp_path / "p.json")])
    assert by_id.exit_code == 1
    assert f"looked in {tmp_path / 'config' / 'profiles'}" in by_id.stderr


def test_list_of_an_empty_folder_says_which(tmp_path: Path) -> None:
    result = runner.invoke(app, ["list", "--profiles-dir", str(tmp_path)])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"no profiles in {tmp_path.resolve()}"
