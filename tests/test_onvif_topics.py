"""ONVIF topic table: every captured notification in tests/onvif_fixtures/*.json gives its
expected event (or outcome). Add a file there from the log line of an unknown topic."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from device_adapters.onvif.topics import (
    Notification,
    Outcome,
    device_time,
    normalise,
    parser_topic,
    topic_key,
)

FIXTURES = Path(__file__).parent / "onvif_fixtures"
RECEIVED = datetime(2026, 5, 1, 8, 0, 3, tzinfo=UTC)
CASES = [
    pytest.param(case, id=f"{path.stem}: {case['name']}")
    for path in sorted(FIXTURES.glob("*.json"))
    for case in json.loads(path.read_text(encoding="utf-8"))
]


@pytest.mark.parametrize("case", CASES)
async def test_fixture(case: dict[str, Any]) -> None:
    note = Notification.from_fixture(case["message"])
    result = await normalise(
        note, camera_id="cam-1", site="s", offset=timedelta(0), received_at=RECEIVED
    )
    expect = dict(case["expect"])
    outcome = expect.pop("outcome", "event")
    assert result.outcome.value == outcome, result.detail
    if outcome != "event":
        assert result.events == []
        return
    [event] = result.events
    assert event.type.value == expect.pop("type")
    assert event.kind.value == expect.pop("kind")
    attrs = event.attributes.model_dump()
    for key, value in expect.items():
        assert attrs[key] == value, key
    assert event.occurred_at == datetime.fromisoformat(note.utc_time.replace("Z", "+00:00"))  # type: ignore[union-attr]


async def test_personal_items_never_leave_raw() -> None:
    note = Notification(
        "tns1:AccessControl/Denied/CredentialNotFound/Card",
        "2026-05-01T08:00:00Z",
        "Changed",
        {"AccessPointToken": "ap_1"},
        {"Card": "6222020200112233", "CredentialHolderName": "赵六"},
    )
    result = await normalise(
        note, camera_id="c", site="s", offset=timedelta(0), received_at=RECEIVED
    )
    event = result.events[0]
    dumped = event.model_dump_json()
    assert "6222020200112233" not in dumped and "赵六" not in dumped
    assert event.attributes.card_ref.startswith("card:")  # type: ignore[union-attr]
    assert "赵六" not in note.fixture_json()


async def test_clock_offset_is_subtracted() -> None:
    note = Notification.from_fixture(
        {"topic": "tns1:Device/Trigger/DigitalInput", "utc_time": "2026-05-01T09:00:00Z",
         "source": {"InputToken": "1"}, "data": {"LogicalState": "true"}}
    )  # fmt: skip
    result = await normalise(
        note, camera_id="c", site="s", offset=timedelta(hours=1), received_at=RECEIVED
    )
    assert result.events[0].occurred_at == datetime(2026, 5, 1, 8, 0, tzinfo=UTC)


def test_absurd_or_missing_device_time_falls_back_to_received() -> None:
    far = Notification("t", "1970-01-01T00:00:00Z")
    assert device_time(far, timedelta(0), RECEIVED) == RECEIVED
    assert device_time(Notification("t", None), timedelta(0), RECEIVED) == RECEIVED
    assert device_time(Notification("t", "garbage"), timedelta(0), RECEIVED) == RECEIVED


def test_topic_spellings() -> None:
    assert topic_key("tns1:Device/Trigger/tnshik:AlarmIn") == "Device/Trigger/AlarmIn"
    assert parser_topic("ns0:VideoSource/MotionAlarm") == "tns1:VideoSource/MotionAlarm"
    assert (
        parser_topic("tns1:Device/Trigger/tnshik:AlarmIn") == "tns1:Device/Trigger/tnshik:AlarmIn"
    )


def test_every_outcome_is_covered_by_a_fixture() -> None:
    seen = {case.values[0]["expect"].get("outcome", "event") for case in CASES}  # type: ignore[index]
    assert seen == {o.value for o in Outcome}
