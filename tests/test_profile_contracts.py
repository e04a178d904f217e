"""Contract test: every profile in ``config/profiles`` against its captured samples.

Layout: ``tests/profiles/<profile-id>/<case>.yaml`` (or ``.json``), one case per file::

    topic: hikvision/door-3-1/event
    payload: {...}              # a JSON object, or a string for text payloads
    received_at: "..."          # optional; default SAMPLE_RECEIVED_AT (2026-11-22T13:05Z)
    registry:                   # optional: what the site registry knows
      door-3-1: {site: lianhua-xiaoqu, kind: access}
    expected:                   # the events, in order; each one partial
      - {type: access_granted, site: lianhua-xiaoqu, attributes: {door: "1"}}
    # or, instead of expected:
    rejected: "not in the type map"   # a substring of the NoMatch/MappingError reason

A profile without samples fails, as does one without an accepted and a declined case, and a
sample folder without a profile. The payload goes through the pipeline's own decoder
(``gateway.ingest.decode``) with the format the profile declares for the topic, encoded as
``lianfang profile test`` encodes a case file, so the command and this test agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from device_adapters.base import DeviceInfo, MappingError, Message, NoMatch
from device_adapters.profiles import ProfileAdapter, load_profiles
from gateway.cli.profile_cmd import SAMPLE_RECEIVED_AT, encode_payload
from gateway.config.loader import load_yaml
from gateway.events import DeviceKind, Event
from gateway.ingest.decode import decode_payload

ROOT = Path(__file__).resolve().parent.parent
PROFILES_DIR = ROOT / "config" / "profiles"
SAMPLES_DIR = Path(__file__).resolve().parent / "profiles"
CASE_KEYS = {"topic", "payload", "received_at", "registry", "expected", "rejected", "note"}
EVENT_KEYS = {"event_id", "site", "device_id", "kind", "type", "occurred_at", "attributes"}
CARD_KEYS = ("card", "cardno", "card_no")


@dataclass(frozen=True)
class Case:
    profile: str
    path: Path

    @property
    def id(self) -> str:
        return f"{self.profile}/{self.path.stem}"

    @property
    def data(self) -> Any:
        # Read when the test runs, so a broken file fails its own case, not the collection.
        return load_yaml(self.path)


def _profile_ids() -> list[str]:
    return sorted(p.profile for p in load_profiles(PROFILES_DIR))


def _case_files(profile: str) -> list[Path]:
    folder = SAMPLES_DIR / profile
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml", ".json"))


def _cases() -> list[Case]:
    cases = []
    for profile in _profile_ids():
        for path in _case_files(profile):
            cases.append(Case(profile, path))
    return cases


ADAPTERS = {p.profile: ProfileAdapter(p) for p in load_profiles(PROFILES_DIR)}
CASES = _cases()


def run_case(adapter: ProfileAdapter, data: dict[str, Any]) -> list[Event]:
    """Normalise one case's message as the pipeline would: decode per the declared format."""
    topic = data["topic"]
    raw = encode_payload(data["payload"])
    decoded = decode_payload(raw, adapter.payload_format(topic), max_bytes=1 << 20, max_depth=64)
    received = data.get("received_at", SAMPLE_RECEIVED_AT)
    if isinstance(received, str):
        received = datetime.fromisoformat(received)
    registry = {
        device_id: DeviceInfo(str(info["site"]), DeviceKind(info["kind"]))
        for device_id, info in (data.get("registry") or {}).items()
    }
    return adapter.normalise(Message(topic, decoded, raw, received), registry.get)


def _card_numbers(value: Any) -> list[str]:
    """Values of card-number keys anywhere in the payload (they must never leak)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key.lower() in CARD_KEYS and isinstance(item, str | int) and len(str(item)) >= 4:
                found.append(str(item))
            else:
                found.extend(_card_numbers(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_card_numbers(item))
    return found


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(expected, float) and isinstance(actual, int | float):
        return actual == pytest.approx(expected)
    return bool(actual == expected)


def check_event(event: Event, expected: dict[str, Any], where: str) -> None:
    unknown = set(expected) - EVENT_KEYS
    assert not unknown, f"{where}: unknown expected keys {sorted(unknown)}"
    dumped = event.model_dump(mode="json")
    for key, want in expected.items():
        if key == "attributes":
            attrs = dumped["attributes"]
            for name, value in want.items():
                got = attrs.get("extra", {}).get(name[6:]) if name.startswith("extra.") else None
                if not name.startswith("extra."):
                    assert name in attrs, f"{where}: attributes has no field {name!r}"
                    got = attrs[name]
                assert _same(got, value), f"{where}: attributes.{name} is {got!r}, want {value!r}"
        elif key == "occurred_at":
            want_dt = want if isinstance(want, datetime) else datetime.fromisoformat(str(want))
            assert event.occurred_at == want_dt, (
                f"{where}: occurred_at is {event.occurred_at.isoformat()}, want {want_dt.isoformat()}"
            )
        else:
            assert _same(dumped[key], want), f"{where}: {key} is {dumped[key]!r}, want {want!r}"


@pytest.mark.parametrize("profile", _profile_ids())
def test_profile_has_samples(profile: str) -> None:
    files = _case_files(profile)
    assert files, f"profile {profile!r} has no samples: add cases under tests/profiles/{profile}/"
    kinds = {"rejected" if "rejected" in load_yaml(p) else "expected" for p in files}
    assert kinds == {"expected", "rejected"}, (
        f"profile {profile!r} needs at least one accepted and one declined sample, has {kinds}"
    )


def test_every_sample_folder_has_a_profile() -> None:
    known = set(_profile_ids())
    orphans = [d.name for d in SAMPLES_DIR.iterdir() if d.is_dir() and d.name not in known]
    assert not orphans, f"sample folders without a profile in config/profiles: {orphans}"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_sample(case: Case) -> None:
    data = case.data
    assert isinstance(data, dict), f"{case.path}: a case must be a mapping"
    unknown = set(data) - CASE_KEYS
    assert not unknown, f"{case.path}: unknown keys {sorted(unknown)}"
    assert ("expected" in data) != ("rejected" in data), (
        f"{case.path}: give exactly one of expected or rejected"
    )
    adapter = ADAPTERS[case.profile]
    assert adapter.accepts(data["topic"]), f"{case.path}: profile does not take {data['topic']}"

    if "rejected" in data:
        with pytest.raises((NoMatch, MappingError)) as info:
            run_case(adapter, data)
        reason = info.value.reason if isinstance(info.value, NoMatch) else str(info.value)
        assert data["rejected"] in reason, f"{case.path}: declined for another reason: {reason}"
        return

    events = run_case(adapter, data)
    expected = data["expected"]
    got = [(e.type.value, e.event_id) for e in events]
    assert len(events) == len(expected), f"{case.path}: {len(events)} events {got}"
    for i, (event, want) in enumerate(zip(events, expected, strict=True)):
        check_event(event, want, f"{case.path} event {i}")
        assert event.source == case.profile
        for card in _card_numbers(data["payload"]):
            assert card not in event.raw, f"{case.path}: card number in event.raw"
            assert card not in event.attributes.model_dump_json(), (
                f"{case.path}: card number in attributes"
            )


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_sample_is_deterministic(case: Case) -> None:
    """The same bytes give the same event ids: redeliveries are recognised downstream."""
    data = case.data
    if "expected" not in data:
        return
    adapter = ADAPTERS[case.profile]
    first = [e.event_id for e in run_case(adapter, data)]
    again = [e.event_id for e in run_case(adapter, data)]
    assert first == again
    assert len(set(first)) == len(first), f"{case.path}: events share an id: {first}"


def test_harness_catches_a_wrong_expectation() -> None:
    """A case whose expected event differs must fail (the contract bites)."""
    good = next(c for c in CASES if c.data.get("expected"))
    data = good.data
    events = run_case(ADAPTERS[good.profile], data)
    wrong_type = {**data["expected"][0], "type": "video_loss"}
    with pytest.raises(AssertionError, match="type is"):
        check_event(events[0], wrong_type, "wrong")
    with pytest.raises(AssertionError, match="attributes has no field"):
        check_event(events[0], {"attributes": {"no_such_field": 1}}, "wrong")
