"""The DC-09 receiver's answers (ACK / NAK / DUH / silence), what it stores, what it
quarantines and why — with a recording sink and a controlled clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gateway.config.sites import DeviceConfig, SiteConfig, SiteRegistry
from gateway.events import EventType
from gateway.receivers.sia import frame as f
from gateway.receivers.sia.config import SiaPanelConfig, SiaReceiverConfig
from gateway.receivers.sia.receiver import SiaReceiver
from tests.receivers.fakes import FakeSink

KEY_HEX = "00112233445566778899AABBCCDDEEFF"
KEY = bytes.fromhex(KEY_HEX)
T0 = datetime(2026, 12, 4, 10, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def registry() -> SiteRegistry:
    panel = DeviceConfig(
        id="panel-1234",
        kind="alarm",
        sia=SiaPanelConfig(
            account="1234", zones={"015": "3-1-301"}, users={"3": "3-1-302"}, null_interval_s=60
        ),
    )
    secure = DeviceConfig(
        id="panel-enc", kind="alarm", sia=SiaPanelConfig(account="BEEF", key_env="LF_TEST_SIA_KEY")
    )
    return SiteRegistry([SiteConfig(id="demo", devices=[panel, secure])])


@pytest.fixture
def rig(monkeypatch: pytest.MonkeyPatch) -> tuple[SiaReceiver, FakeSink, Clock]:
    monkeypatch.setenv("LF_TEST_SIA_KEY", KEY_HEX)
    sink, clock = FakeSink(), Clock()
    receiver = SiaReceiver(SiaReceiverConfig(enabled=True), registry(), sink, clock=clock)  # type: ignore[arg-type]
    return receiver, sink, clock


def kind_of(answer: bytes | None) -> str | None:
    """ACK, NAK or DUH (None: silence), after checking the answer's own CRC and length."""
    if answer is None:
        return None
    body = f.split_frame(answer)
    return body[1:].split(b'"')[0].lstrip(b"*").decode()


async def send(receiver: SiaReceiver, raw: bytes) -> bytes | None:
    return await receiver.handle(raw, transport="tcp", peer="127.0.0.1:1")


async def test_contact_id_panic_is_stored_then_acked_with_its_sequence(rig) -> None:  # type: ignore[no-untyped-def]
    receiver, sink, _ = rig
    answer = await send(receiver, f.build_frame("ADM-CID", 4321, "1234", "1120 01 015"))
    assert answer == f._wrap('"ACK"4321R1L1#1234[]')
    (event,) = sink.events
    assert (event.type, event.device_id, event.site, event.kind) == (
        EventType.PANIC, "panel-1234", "demo", "alarm",
    )  # fmt: skip
    assert event.attributes.household == "3-1-301"  # type: ignore[union-attr]
    assert event.attributes.zone == "015"
    assert event.attributes.extra["code"] == "1120"


async def test_user_maps_to_a_household_and_unmapped_zone_has_none(rig) -> None:  # type: ignore[no-untyped-def]
    receiver, sink, _ = rig
    await send(receiver, f.build_frame("ADM-CID", 1, "1234", "1121 01 003"))  # duress by user 3
    await send(receiver, f.build_frame("SIA-DCS", 2, "1234", "Nri1/BA099"))
    duress, burglary = sink.events
    assert duress.attributes.household == "3-1-302"  # type: ignore[union-attr]
    assert burglary.type is EventType.INTRUSION and burglary.attributes.household is None  # type: ignore[union-attr]


async def test_bad_crc_is_naked_and_stored_nowhere_but_quarantine(rig) -> None:  # type: ignore[no-untyped-def]
    receiver, sink, _ = rig
    raw = bytearray(f.build_frame("ADM-CID", 5, "1234", "1120 01 015"))
    raw[-3] ^= 0x01  # one bit of the data flipped
    assert kind_of(await send(receiver, bytes(raw))) == "NAK"
    assert sink.events == []
    assert sink.reasons() == ["bad_crc"]


async def test_null_is_acked_and_is_a_heartbeat(rig) -> None:  # type: ignore[no-untyped-def]
    receiver, sink, _ = rig
    assert kind_of(await send(receiver, f.build_frame("NULL", 9, "1234", ""))) == "ACK"
    assert [e.type for e in sink.events] == [EventType.HEARTBEAT]


async def test_retransmission_is_acked_again_not_stored_twice(rig) -> None:  # type: ignore[no-untyped-def]
    receiver, sink, clock = rig
    raw = f.build_frame("ADM-CID", 77, "1234", "1120 01 015")
    first = await send(receiver, raw)
    clock.now += timedelta(seconds=20)
    again = await send(receiver, raw)
    assert first == again and kind_of(again) == "ACK"
    assert len(sink.events) == 1
    assert sink.reasons() == ["duplicate"]
    # beyond the window the same sequence is a new message (the panel wrapped or restarted)
    clock.now += timedelta(seconds=SiaReceiverConfig().duplicate_window_s + 1)
    await send(receiver, raw)
    assert len(sink.events) == 2
    assert sink.events[0].event_id != sink.events[1].event_id


async def test_not_stored_in_time_means_silence_and_the_repeat_is_processed(rig) -> None:  # type: ignore[no-untyped-def]
    receiver, sink, _ = rig
    raw = f.build_frame("ADM-CID", 8, "1234", "1120 01 015")
    sink.stored = False
    assert await send(receiver, raw) is None
    sink.stored = True
    assert kind_of(await send(receiver, raw)) == "ACK"
    assert [e.type for e in sink.events] == [EventType.PANIC]


async def test_unknown_account(rig) -> None:  # type: ignore[no-untyped-def]
    receiver, sink, _ = rig
    assert (
        kind_of(await send(receiver, f.build_frame("ADM-CID", 1, "9999", "1130 01 001"))) == "DUH"
    )
    assert sink.reasons() == ["unknown_device"]
    # a panic goes to the gateway's entry point for unregistered devices
    assert (
        kind_of(await send(receiver, f.build_frame("ADM-CID", 2, "9999", "1120 01 015"))) == "DUH"
    )
    (panic,) = sink.panics
    assert panic["device_id"] == "sia:9999" and "1120" in panic["detail"]
    sink.raise_panic = True  # once that entry point stores its incident, the panel is ACKed
    assert (
        kind_of(await send(receiver, f.build_frame("ADM-CID", 3, "9999", "1120 01 015"))) == "ACK"
    )
    assert sink.events == []


async def test_unknown_code_and_message_id_get_duh(rig) -> None:  # type: ignore[no-untyped-def]
    receiver, sink, _ = rig
    assert (
        kind_of(await send(receiver, f.build_frame("ADM-CID", 1, "1234", "1999 01 001"))) == "DUH"
    )
    assert kind_of(await send(receiver, f.build_frame("SIA-DCS", 2, "1234", "NZZ"))) == "DUH"
    assert kind_of(await send(receiver, f.build_frame("FOO-BAR", 3, "1234", "x"))) == "DUH"
    assert sink.reasons() == ["unknown_code"] * 3 and sink.events == []


async def test_timestamp_window(rig) -> None:  # type: ignore[no-untyped-def]
    receiver, sink, clock = rig
    ok = f.build_frame("ADM-CID", 1, "1234", "1602 00 000", at=clock.now - timedelta(seconds=39))
    assert kind_of(await send(receiver, ok)) == "ACK"
    late = f.build_frame("ADM-CID", 2, "1234", "1602 00 000", at=clock.now - timedelta(seconds=41))
    early = f.build_frame("ADM-CID", 3, "1234", "1602 00 000", at=clock.now + timedelta(seconds=21))
    for raw in (late, early):
        answer = await send(receiver, raw)
        assert kind_of(answer) == "NAK"
        assert answer is not None and f.timestamp_text(clock.now).encode() in answer  # our time
    assert sink.reasons() == ["stale_timestamp", "stale_timestamp"]


async def test_encrypted_account(rig) -> None:  # type: ignore[no-untyped-def]
    receiver, sink, clock = rig
    raw = f.build_frame("ADM-CID", 11, "BEEF", "1120 01 015", key=KEY, at=clock.now)
    answer = await send(receiver, raw)
    header = f.parse_header(f.split_frame(answer or b""))
    assert header.message_id == "ACK" and header.encrypted and header.sequence == "0011"
    assert f.parse_message(header, f.decrypt(header, KEY)).timestamp == clock.now
    # the same account in plaintext, or with another key, is refused
    assert kind_of(await send(receiver, f.build_frame("NULL", 12, "BEEF", ""))) == "DUH"
    other = f.build_frame("NULL", 13, "BEEF", "", key=bytes(16), at=clock.now)
    assert kind_of(await send(receiver, other)) == "DUH"
    # a captured frame replayed after the window: NAK
    clock.now += timedelta(minutes=10)
    assert kind_of(await send(receiver, raw)) == "NAK"
    assert sink.reasons() == ["unauthenticated", "decrypt_failed", "stale_timestamp"]
    assert [e.type for e in sink.events] == [EventType.PANIC]


async def test_encrypted_message_to_a_plain_account_is_duh(rig) -> None:  # type: ignore[no-untyped-def]
    receiver, sink, clock = rig
    raw = f.build_frame("NULL", 1, "1234", "", key=KEY, at=clock.now)
    assert kind_of(await send(receiver, raw)) == "DUH"
    assert sink.reasons() == ["decrypt_failed"]


async def test_supervision_offline_then_online(rig) -> None:  # type: ignore[no-untyped-def]
    receiver, sink, clock = rig
    await send(receiver, f.build_frame("NULL", 1, "1234", ""))
    clock.now += timedelta(seconds=60 + 30)  # interval + grace: not yet
    assert receiver.supervision.due(clock.now) == []
    clock.now += timedelta(seconds=1)
    (offline,) = receiver.supervision.due(clock.now)
    assert (offline.type, offline.device_id) == (EventType.OFFLINE, "panel-1234")
    assert receiver.supervision.due(clock.now) == []  # once
    await send(receiver, f.build_frame("NULL", 2, "1234", ""))
    assert [e.type for e in sink.events] == [
        EventType.HEARTBEAT,
        EventType.ONLINE,
        EventType.HEARTBEAT,
    ]
    # the unsupervised encrypted panel never goes offline
    clock.now += timedelta(days=3)
    assert [e.device_id for e in receiver.supervision.due(clock.now)] == ["panel-1234"]
