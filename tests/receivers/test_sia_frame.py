"""DC-09 frames: CRC, length, encryption and the answers, checked against known values and
against pysiaalarm, an independent implementation (Home Assistant's SIA integration)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway.ingest.reasons import Reason
from gateway.receivers.sia import frame as f

KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AT = datetime(2026, 12, 4, 10, 30, 5, tzinfo=UTC)


def test_crc16_is_crc16_arc() -> None:
    assert f.crc16(b"123456789") == 0xBB3D  # the catalogued check value of CRC-16/ARC
    assert f.crc16(b"") == 0


def test_frame_round_trip_and_header_fields() -> None:
    raw = f.build_frame("ADM-CID", 12, "1234", "1120 01 015", at=AT, receiver="2", line="3")
    assert raw.startswith(b"\n") and raw.endswith(b"\r")
    body = f.split_frame(raw)
    assert int(raw[5:9], 16) == len(body)  # "0LLL"
    header = f.parse_header(body)
    assert (header.message_id, header.sequence, header.receiver, header.line, header.account) == (
        "ADM-CID", "0012", "2", "3", "1234",
    )  # fmt: skip
    message = f.parse_message(header)
    assert message.data == "1120 01 015"
    assert message.timestamp == AT


def test_encrypted_frame_round_trip() -> None:
    raw = f.build_frame("SIA-DCS", 7, "ABC123", "Nri1/PA015", key=KEY, at=AT)
    header = f.parse_header(f.split_frame(raw))
    assert header.encrypted
    assert "PA015" not in raw.decode()
    message = f.parse_message(header, f.decrypt(header, KEY))
    assert message.data == "Nri1/PA015" and message.timestamp == AT


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda r: r[:1] + b"0000" + r[5:], Reason.BAD_CRC),
        (lambda r: r[:-3] + b"6\r", Reason.BAD_CRC),
        (lambda r: r[:5] + b"0FFF" + r[9:], Reason.BAD_LENGTH),
        (lambda r: b"\nZZZZ0010" + r[9:], Reason.MALFORMED_FRAME),
        (lambda r: b"\n" + b"A" * 5000 + b"\r", Reason.OVERSIZE),
        (lambda r: b"\nshort\r", Reason.MALFORMED_FRAME),
    ],
)
def test_broken_frames_say_why(mutate, reason) -> None:  # type: ignore[no-untyped-def]
    raw = f.build_frame("ADM-CID", 1, "1234", "1120 01 015")
    with pytest.raises(f.FrameError) as caught:
        f.parse_header(f.split_frame(mutate(raw)))
    assert caught.value.reason is reason


def test_length_is_checked_even_when_the_crc_matches() -> None:
    body = b'"NULL"0001L0#1234[]'
    forged = b"\n%04X0%03X" % (f.crc16(body), len(body) + 1) + body + b"\r"
    with pytest.raises(f.FrameError) as caught:
        f.split_frame(forged)
    assert caught.value.reason is Reason.BAD_LENGTH


def test_wrong_key_and_missing_timestamp_are_refused() -> None:
    header = f.parse_header(f.split_frame(f.build_frame("NULL", 1, "1234", "", key=KEY, at=AT)))
    with pytest.raises(f.FrameError) as caught:
        f.decrypt(header, bytes(16))
    assert caught.value.reason is Reason.DECRYPT_FAILED
    # an encrypted message must carry a timestamp (DC-09 5.4.6)
    plain = "]"
    forged = f._wrap(f'"*NULL"0001L0#1234[{f.encrypt(plain, KEY)}')
    header = f.parse_header(f.split_frame(forged))
    with pytest.raises(f.FrameError) as caught:
        f.parse_message(header, f.decrypt(header, KEY))
    assert caught.value.reason is Reason.STALE_TIMESTAMP


def test_key_formats() -> None:
    assert f.parse_key("000102030405060708090A0B0C0D0E0F") == KEY
    assert f.parse_key("ascii:0123456789ABCDEF") == b"0123456789ABCDEF"
    assert f.parse_key("0123456789ABCDEF") == b"0123456789ABCDEF"  # 16 characters
    assert f.parse_key("hex:0011") is None
    assert f.parse_key("") is None and f.parse_key("short") is None


def test_answers() -> None:
    header = f.parse_header(f.split_frame(f.build_frame("ADM-CID", 42, "1234", "1120 01 015")))
    ack = f.ack(header, None, AT)
    assert ack == f._wrap('"ACK"0042R1L1#1234[]')
    assert f.split_frame(ack)  # its own CRC and length are right
    assert f.duh(header) == f._wrap('"DUH"0042R1L1#1234[]')
    nak = f.nak(AT)
    assert nak == f._wrap('"NAK"0000R0L0A0[]_10:30:05,12-04-2026')
    enc = f.parse_header(f.split_frame(f.build_frame("NULL", 9, "1234", "", key=KEY, at=AT)))
    encrypted_ack = f.parse_header(f.split_frame(f.ack(enc, KEY, AT)))
    assert encrypted_ack.message_id == "ACK" and encrypted_ack.encrypted
    assert f.parse_message(encrypted_ack, f.decrypt(encrypted_ack, KEY)).timestamp == AT


pysiaalarm = pytest.importorskip("pysiaalarm")


def test_pysiaalarm_reads_our_frames() -> None:
    """An independent DC-09 implementation accepts our CRC, length and AES encoding."""
    from pysiaalarm import SIAAccount, SIAEvent

    ascii_key = "0123456789ABCDEF"  # pysiaalarm takes 16 hex characters as the key's bytes
    for key_text, data, message_id in (
        (None, "1120 01 015", "ADM-CID"),
        (None, "Nri1/BA003", "SIA-DCS"),
        (ascii_key, "Nri1/FA007", "SIA-DCS"),
    ):
        key = f.parse_key(f"ascii:{key_text}") if key_text else None
        raw = f.build_frame(message_id, 5, "1234", data, key=key, at=datetime.now(UTC))
        account = SIAAccount("1234", key_text)
        event = SIAEvent.from_line(raw.decode().strip(), {"1234": account})
        assert event.valid_message, "CRC"
        # (its own valid_length reads the hex length field as decimal and raises: not used)
        assert int(event.length, 16) == len(event.full_message)
        assert event.sequence == "0005"
        assert event.code in ("PA", "BA", "FA"), event.code  # pysiaalarm maps 1120 to PA
