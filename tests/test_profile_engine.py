"""Edge cases of the profile loader and engine (the contract test covers the shipped profiles)."""

from __future__ import annotations

import json
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from device_adapters.base import DeviceInfo, MappingError, Message, NoMatch
from device_adapters.profiles import ProfileAdapter
from device_adapters.profiles.engine import UnknownDevice, parse_time
from device_adapters.profiles.loader import load_profile, load_profiles
from device_adapters.profiles.schema import Profile, TimeSpec
from device_adapters.profiles.topics import compile_topic
from gateway.config.errors import ConfigErrors
from gateway.events import DeviceKind, Event

RECEIVED = datetime(2026, 11, 22, 13, 5, tzinfo=UTC)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def profile_from(tmp_path: Path, mapping: str, *, presets: str | None = None) -> Profile:
    """A one-mapping profile in a folder (with optional shared presets), loaded as in prod."""
    if presets is not None:
        write(tmp_path / "presets" / "shared.yaml", presets)
    body = textwrap.indent(textwrap.dedent(mapping).strip(), "    ")
    write(
        tmp_path / "test.yaml",
        f"profile: test\nname: Test\nmappings:\n  - id: m\n{body}\n",
    )
    (profile,) = load_profiles(tmp_path)
    return profile


def message(topic: str, payload: Any, *, received: datetime = RECEIVED) -> Message:
    raw = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    return Message(topic, payload, raw, received)


def no_registry(device_id: str) -> DeviceInfo | None:
    return None


def registry(device_id: str) -> DeviceInfo | None:
    return DeviceInfo("site-a", DeviceKind.SENSOR)


def one(adapter: ProfileAdapter, msg: Message) -> Event:
    (event,) = adapter.normalise(msg, registry)
    return event


def errors_of(exc: pytest.ExceptionInfo[ConfigErrors]) -> list[tuple[str, str, str]]:
    return [(Path(e.file).name, e.key_path, e.message) for e in exc.value.errors]


# --- loader: errors name the file and the key path -------------------------------------------


def test_bad_jmespath_names_file_and_key_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as exc:
        profile_from(
            tmp_path,
            """
            topic: "dev/{device}"
            device_id: topic.device
            type: heartbeat
            attributes:
              zone: "payload.[zone"
            """,
        )
    ((file, key_path, msg),) = errors_of(exc)
    assert file == "test.yaml"
    assert key_path.startswith("mappings[0].attributes.zone")
    assert "invalid JMESPath expression 'payload.[zone'" in msg


def test_bad_when_expression_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as exc:
        profile_from(
            tmp_path,
            """
            topic: "dev/{device}"
            when: "payload.v == "
            device_id: topic.device
            type: heartbeat
            """,
        )
    ((file, key_path, msg),) = errors_of(exc)
    assert (file, key_path) == ("test.yaml", "mappings[0]")
    assert "invalid JMESPath expression" in msg


def test_unknown_attribute_for_the_kind(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as exc:
        profile_from(
            tmp_path,
            """
            topic: "dev/{device}"
            device_id: topic.device
            kind: access
            type: door_open
            attributes:
              plate: payload.plate
            """,
        )
    ((_, key_path, msg),) = errors_of(exc)
    assert key_path == "mappings[0]"
    assert "attribute 'plate' is not a field of this kind" in msg
    assert "door" in msg  # the allowed names are listed


def test_unknown_key_is_a_typo(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as exc:
        profile_from(
            tmp_path,
            """
            topic: "dev/{device}"
            device_id: topic.device
            type: heartbeat
            contine: true
            """,
        )
    assert ("test.yaml", "mappings[0].contine", "unknown key (typo?)") in errors_of(exc)


def test_unknown_event_type_in_type_map(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors, match=r"type.map\['7'\]: 'door_ajar' is not an event type"):
        profile_from(
            tmp_path,
            """
            topic: "dev/{device}"
            device_id: topic.device
            type: {expr: payload.code, map: {"7": door_ajar}}
            """,
        )


def test_unknown_preset(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as exc:
        profile_from(
            tmp_path,
            """
            extends: z2m-stat
            type: heartbeat
            """,
            presets="z2m-state:\n  topic: 'z/{device}'\n  device_id: topic.device\n",
        )
    ((file, key_path, msg),) = errors_of(exc)
    assert (file, key_path) == ("test.yaml", "mappings[0].extends")
    assert msg == "unknown preset 'z2m-stat' (known: z2m-state)"


def test_preset_is_merged_and_mapping_wins(tmp_path: Path) -> None:
    profile = profile_from(
        tmp_path,
        """
        extends: [base]
        type: heartbeat
        attributes:
          zone: payload.where
        """,
        presets="""
        base:
          topic: "z/{device}"
          device_id: topic.device
          attributes:
            battery_pct: payload.battery
            zone: payload.zone
        """,
    )
    event = one(
        ProfileAdapter(profile), message("z/s1", {"battery": 50, "where": "w", "zone": "z"})
    )
    assert event.attributes.battery_pct == 50
    assert event.attributes.zone == "w"


def test_profile_local_preset(tmp_path: Path) -> None:
    write(
        tmp_path / "local.yaml",
        """
        profile: local
        name: Local presets
        presets:
          dev: {topic: "d/{device}", device_id: topic.device}
        mappings:
          - {id: a, extends: dev, type: heartbeat}
        """,
    )
    profile = load_profile(tmp_path / "local.yaml")
    assert profile.mappings[0].topic == ["d/{device}"]


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    write(tmp_path / "broken.yaml", "profile: x\nmappings: [\n")
    with pytest.raises(ConfigErrors) as exc:
        load_profiles(tmp_path)
    ((file, where, msg),) = errors_of(exc)
    assert file == "broken.yaml"
    assert where.startswith("line ")
    assert "invalid YAML" in msg


def test_duplicate_profile_id(tmp_path: Path) -> None:
    body = "profile: same\nname: S\nmappings:\n  - {id: a, topic: 'a/{d}', device_id: topic.d, type: heartbeat}\n"
    write(tmp_path / "one.yaml", body)
    write(tmp_path / "two.yaml", body)
    with pytest.raises(ConfigErrors, match="profile id 'same' already used"):
        load_profiles(tmp_path)


# --- topics -----------------------------------------------------------------------------------


def test_topic_placeholders() -> None:
    one_level = compile_topic("lianfang/{site}/{device}/event")
    assert one_level.subscription == "lianfang/+/+/event"
    assert one_level.match("lianfang/s1/d1/event") == {"site": "s1", "device": "d1"}
    assert one_level.match("lianfang/s1/d1/x/event") is None
    rest = compile_topic("vendor/{path:#}")
    assert rest.subscription == "vendor/#"
    assert rest.match("vendor/a/b/c") == {"path": "a/b/c"}
    plain = compile_topic("frigate/events")
    assert plain.match("frigate/events") == {}
    assert plain.match("frigate/events/x") is None


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("a/{x}/{x}", "used twice"),
        ("a/{rest:#}/b", "may only be the last level"),
        ("a/b{x}", "bad topic level"),
        ("$SYS/broker", "not a $SYS topic"),
        ("", "non-empty"),
    ],
)
def test_bad_topic_patterns(pattern: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason.replace("$", r"\$")):
        compile_topic(pattern)


def test_topic_captures_feed_expressions(tmp_path: Path) -> None:
    profile = profile_from(
        tmp_path,
        """
        topic: "acme/{site}/{device}/{rest:#}"
        device_id: topic.device
        site: topic.site
        kind: sensor
        type: heartbeat
        attributes:
          zone: topic.rest
        """,
    )
    adapter = ProfileAdapter(profile)
    assert adapter.subscriptions() == ["acme/+/+/#"]
    assert not adapter.accepts("acme/s1/d1")
    (event,) = adapter.normalise(message("acme/s1/d1/a/b", {}), no_registry)
    assert (event.site, event.device_id, event.attributes.zone) == ("s1", "d1", "a/b")


# --- time formats -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fmt", "tz", "expected"),
    [
        (1795352580, "auto", None, "2026-11-22T13:03:00+00:00"),
        (1795352580.25, "epoch_s", None, "2026-11-22T13:03:00.250000+00:00"),
        ("1795352580", "epoch_s", None, "2026-11-22T13:03:00+00:00"),
        (1795352580123, "auto", None, "2026-11-22T13:03:00.123000+00:00"),
        (1795352580123, "epoch_ms", None, "2026-11-22T13:03:00.123000+00:00"),
        ("1795352580123", "epoch_ms", None, "2026-11-22T13:03:00.123000+00:00"),
        ("2026-11-22T21:03:00+08:00", "iso8601", None, "2026-11-22T13:03:00+00:00"),
        ("2026-11-22T13:03:00Z", "auto", None, "2026-11-22T13:03:00+00:00"),
        # Naive device-local time: the gateway's zone (Asia/Shanghai, UTC+8) by default…
        ("2026-11-22 21:03:00", "auto", None, "2026-11-22T13:03:00+00:00"),
        ("2026-11-22T21:03:00", "iso8601", None, "2026-11-22T13:03:00+00:00"),
        # …or the mapping's own `tz`.
        ("2026-11-22 21:03:00", "auto", "Asia/Urumqi", "2026-11-22T15:03:00+00:00"),
        ("20261122210300", "%Y%m%d%H%M%S", None, "2026-11-22T13:03:00+00:00"),
        ("2026/11/22 21:03:00 +0800", "%Y/%m/%d %H:%M:%S %z", None, "2026-11-22T13:03:00+00:00"),
    ],
)
def test_time_formats(value: Any, fmt: str, tz: str | None, expected: str) -> None:
    spec = TimeSpec(expr="payload.t", format=fmt, tz=tz)
    assert parse_time(value, spec, "Asia/Shanghai") == datetime.fromisoformat(expected)


@pytest.mark.parametrize("value", [True, None, "yesterday", {"sec": 1}])
def test_unreadable_times(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_time(value, TimeSpec(expr="payload.t"), "Asia/Shanghai")


def test_unknown_timezone_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors, match="unknown timezone 'Asia/Beijing'"):
        profile_from(
            tmp_path,
            """
            topic: "dev/{device}"
            device_id: topic.device
            type: heartbeat
            occurred_at: {expr: payload.t, tz: Asia/Beijing}
            """,
        )


TIMED = """
topic: "dev/{device}"
device_id: topic.device
type: heartbeat
occurred_at: {expr: payload.t, format: auto}
"""


def test_naive_time_in_mapping_uses_gateway_zone(tmp_path: Path) -> None:
    adapter = ProfileAdapter(profile_from(tmp_path, TIMED))
    event = one(adapter, message("dev/d1", {"t": "2026-11-22 21:03:00"}))
    assert event.occurred_at == datetime(2026, 11, 22, 13, 3, tzinfo=UTC)
    # Another gateway zone changes the reading of the same naive time.
    utc_adapter = ProfileAdapter(adapter.profile, default_tz="UTC")
    event = one(utc_adapter, message("dev/d1", {"t": "2026-11-22 11:03:00"}))
    assert event.occurred_at == datetime(2026, 11, 22, 11, 3, tzinfo=UTC)


def test_missing_time_falls_back_to_received(tmp_path: Path) -> None:
    adapter = ProfileAdapter(profile_from(tmp_path, TIMED))
    assert one(adapter, message("dev/d1", {})).occurred_at == RECEIVED
    assert one(adapter, message("dev/d1", {"t": ""})).occurred_at == RECEIVED


def test_future_timestamp_beyond_a_day_is_rejected(tmp_path: Path) -> None:
    adapter = ProfileAdapter(profile_from(tmp_path, TIMED))
    soon = RECEIVED + timedelta(hours=23)
    assert one(adapter, message("dev/d1", {"t": soon.isoformat()})).occurred_at == soon
    late = RECEIVED + timedelta(days=1, seconds=1)
    with pytest.raises(MappingError, match="more than a day ahead"):
        adapter.normalise(message("dev/d1", {"t": late.isoformat()}), registry)


def test_panic_from_a_clock_beyond_a_day_ahead_is_kept_at_its_receipt(tmp_path: Path) -> None:
    """A panic is never dropped: a button whose clock runs more than a day ahead still raises
    its alarm, stamped with the time it was received (found by bench/chaos.py clock_skew)."""
    adapter = ProfileAdapter(profile_from(tmp_path, TIMED.replace("heartbeat", "panic")))
    late = RECEIVED + timedelta(days=1, seconds=1)
    event = one(adapter, message("dev/d1", {"t": late.isoformat()}))
    assert event.type == "panic"
    assert event.occurred_at == RECEIVED
    assert event.attributes.extra["device_time"] == late.isoformat()


def test_unreadable_time_is_a_mapping_error(tmp_path: Path) -> None:
    adapter = ProfileAdapter(profile_from(tmp_path, TIMED))
    with pytest.raises(MappingError, match="m: occurred_at: cannot read 'soon'"):
        adapter.normalise(message("dev/d1", {"t": "soon"}), registry)


# --- event ids, personal data, declines -----------------------------------------------------


def test_hash_event_id_is_deterministic_for_identical_bytes(tmp_path: Path) -> None:
    adapter = ProfileAdapter(profile_from(tmp_path, TIMED))
    raw = b'{"t": 1795352580}'
    first = Message("dev/d1", json.loads(raw), raw, RECEIVED)
    redelivered = Message("dev/d1", json.loads(raw), raw, RECEIVED + timedelta(minutes=5))
    a, b = one(adapter, first), one(adapter, redelivered)
    assert a.event_id == b.event_id
    assert a.event_id.startswith("test:d1:h")
    other = b'{"t": 1795352581}'
    assert (
        one(adapter, Message("dev/d1", json.loads(other), other, RECEIVED)).event_id != a.event_id
    )
    assert one(adapter, Message("dev/d2", json.loads(raw), raw, RECEIVED)).event_id != a.event_id


def test_device_event_id_is_prefixed_with_profile_and_device(tmp_path: Path) -> None:
    adapter = ProfileAdapter(profile_from(tmp_path, TIMED + "event_id: payload.seq\n"))
    assert one(adapter, message("dev/d1", {"seq": 7})).event_id == "test:d1:7"


CARD = """
topic: "door/{device}"
device_id: topic.device
kind: access
site: {value: site-a}
type: access_granted
attributes:
  card_ref: payload.card
  person_ref: payload.person
"""


def test_card_number_is_pseudonymised_and_masked_in_raw(tmp_path: Path) -> None:
    adapter = ProfileAdapter(profile_from(tmp_path, CARD))
    event = one(adapter, message("door/d1", {"card": "0012345678", "person": "E1042"}))
    assert event.attributes.card_ref is not None
    assert event.attributes.card_ref.startswith("card:")
    assert event.attributes.card_masked == "******5678"
    assert event.attributes.person_ref is not None
    assert event.attributes.person_ref.startswith("person:")
    assert "0012345678" not in event.raw
    assert "E1042" not in event.raw
    again = one(adapter, message("door/d1", {"card": "0012345678"}))
    assert again.attributes.card_ref == event.attributes.card_ref  # stable, so rules can compare


def test_empty_card_number_is_no_card(tmp_path: Path) -> None:
    adapter = ProfileAdapter(profile_from(tmp_path, CARD))
    event = one(adapter, message("door/d1", {"card": "", "person": " "}))
    assert event.attributes.card_ref is None
    assert event.attributes.card_masked is None
    assert event.attributes.person_ref is None


def test_unmapped_code_says_which(tmp_path: Path) -> None:
    adapter = ProfileAdapter(
        profile_from(
            tmp_path,
            """
            topic: "dev/{device}"
            device_id: topic.device
            type: {expr: payload.code, map: {"1": door_open}}
            """,
        )
    )
    with pytest.raises(NoMatch, match=r"m: type code 2 is not in the type map"):
        adapter.normalise(message("dev/d1", {"code": 2}), registry)


def test_unknown_device_names_what_is_missing(tmp_path: Path) -> None:
    adapter = ProfileAdapter(profile_from(tmp_path, TIMED))
    with pytest.raises(
        UnknownDevice, match="device 'd1' is not registered and the profile gives no site"
    ):
        adapter.normalise(message("dev/d1", {}), no_registry)


def test_text_payload_on_a_json_mapping(tmp_path: Path) -> None:
    adapter = ProfileAdapter(profile_from(tmp_path, TIMED))
    with pytest.raises(NoMatch, match="payload is text, mapping expects JSON"):
        adapter.normalise(message("dev/d1", "online"), registry)


def test_expression_type_error_declines_instead_of_crashing(tmp_path: Path) -> None:
    adapter = ProfileAdapter(
        profile_from(
            tmp_path,
            """
            topic: "dev/{device}"
            when: "length(payload.zones) > `0`"
            device_id: topic.device
            type: intrusion
            attributes:
              zone: "join(',', payload.zones)"
            """,
        )
    )
    with pytest.raises(NoMatch, match=r"`when: length\(payload.zones\) > `0`` failed"):
        adapter.normalise(message("dev/d1", {"zones": 3}), registry)
    with pytest.raises(MappingError, match="m: an expression failed on this payload"):
        adapter.normalise(message("dev/d1", {"zones": ["a", 1]}), registry)
    assert one(adapter, message("dev/d1", {"zones": ["a", "b"]})).attributes.zone == "a,b"


def test_continue_gives_several_events(tmp_path: Path) -> None:
    write(
        tmp_path / "multi.yaml",
        """
        profile: multi
        name: Multi
        presets:
          dev: {topic: "dev/{device}", device_id: topic.device, kind: sensor}
        mappings:
          - {id: tamper, extends: dev, when: "payload.tamper", type: tamper, continue: true}
          - {id: open, extends: dev, when: "payload.open", type: door_open}
          - {id: never, extends: dev, type: heartbeat}
        """,
    )
    adapter = ProfileAdapter(load_profiles(tmp_path)[0])
    events = adapter.normalise(message("dev/d1", {"tamper": True, "open": True}), registry)
    assert [e.type.value for e in events] == ["tamper", "door_open"]
    assert len({e.event_id for e in events}) == 2
    # Without `continue`, the first match wins: the heartbeat is not reached.
    assert [e.type.value for e in adapter.normalise(message("dev/d1", {}), registry)] == [
        "heartbeat"
    ]
