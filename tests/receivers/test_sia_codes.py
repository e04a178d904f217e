"""Contact ID and SIA-DCS codes → event types, as issue 17 lists them."""

from __future__ import annotations

import pytest

from gateway.events import EventType
from gateway.receivers.sia.codes import UnknownCode, contact_id, sia_dcs

T = EventType


@pytest.mark.parametrize(
    ("data", "type_"),
    [
        *[(f"1{c} 01 015", T.PANIC) for c in (120, 121, 122)],
        *[(f"1{c} 01 004", T.INTRUSION) for c in range(130, 135)],
        *[(f"1{c} 01 007", T.FIRE) for c in range(110, 119)],
        *[(f"1{c} 01 009", T.TAMPER) for c in (137, 144, 145)],
        ("1301 00 000", T.TROUBLE),  # AC loss
        ("1302 00 000", T.BATTERY_LOW),
        ("1309 00 000", T.BATTERY_LOW),
        *[(f"1{c} 00 000", T.TROUBLE) for c in (300, 303, 304, 305, 306, 307, 308)],
        *[(f"1{c} 01 003", T.DISARMED) for c in range(401, 408)],
        *[(f"3{c} 01 003", T.ARMED) for c in range(401, 408)],
        ("1602 00 000", T.HEARTBEAT),
        ("3120 01 015", T.RESTORE),  # a panic zone restored: never a cancel
        ("3110 01 007", T.RESTORE),
        ("3301 00 000", T.RESTORE),  # AC back
    ],
)
def test_contact_id(data: str, type_: EventType) -> None:
    (event,) = contact_id(data)
    assert event.type is type_
    assert event.code == data[:4]


def test_contact_id_zone_user_and_partition() -> None:
    (panic,) = contact_id("1120 02 015")
    assert (panic.zone, panic.user, panic.partition) == ("015", None, "02")
    (opening,) = contact_id("1401 01 003")
    assert (opening.zone, opening.user) == (None, "003")
    (duress,) = contact_id("1121 01 007")  # duress reports the user who was forced
    assert (duress.type, duress.user, duress.zone) == (T.PANIC, "007", None)
    (compact,) = contact_id("112001015")  # no spaces: QEEEGGZZZ
    assert compact.zone == "015"


@pytest.mark.parametrize(
    "data", ["", "1120", "9120 01 015", "1999 01 015", "1120 01 01Z", "x" * 50]
)
def test_contact_id_unknown(data: str) -> None:
    with pytest.raises(UnknownCode):
        contact_id(data)


@pytest.mark.parametrize(
    ("data", "types"),
    [
        ("Nri1/PA015", [T.PANIC]),
        ("Nri1/HA002", [T.PANIC]),
        ("NBA003", [T.INTRUSION]),
        ("Nri2/FA007/FR007", [T.FIRE, T.RESTORE]),
        ("Nri1/TA009", [T.TAMPER]),
        ("NAT", [T.TROUBLE]),
        ("NYT", [T.BATTERY_LOW]),
        ("Nid3/ri1/OP3", [T.DISARMED]),
        ("Nri1/CL004", [T.ARMED]),
        ("NRP", [T.HEARTBEAT]),
        ("Nri1/BA003^Back door^", [T.INTRUSION]),
    ],
)
def test_sia_dcs(data: str, types: list[EventType]) -> None:
    assert [e.type for e in sia_dcs(data)] == types


def test_sia_dcs_modifiers() -> None:
    (opening,) = sia_dcs("Nid12/ri3/OP")
    assert (opening.user, opening.partition, opening.zone) == ("12", "3", None)
    (panic,) = sia_dcs("Nri1/PA015")
    assert (panic.zone, panic.partition) == ("015", "1")
    (burglary,) = sia_dcs("Nri1/BA003^Back door^")
    assert burglary.text == "Back door"


@pytest.mark.parametrize("data", ["", "N", "NZZ001", "Nri1/", "N/" * 40 + "BA1", "Npa%%"])
def test_sia_dcs_unknown(data: str) -> None:
    with pytest.raises(UnknownCode):
        sia_dcs(data)
