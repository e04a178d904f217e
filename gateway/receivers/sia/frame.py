"""ANSI/SIA DC-09-2013 frames: parse what a panel sends, build what the receiver answers.

A frame is ``LF crc 0LLL "id" seq [Rrcvr] Lpref #acct [data] [_timestamp] CR``:

- ``crc``: four hex digits, CRC-16/ARC of everything from the opening quote of the id to the
  end of the timestamp; ``0LLL``: "0" and three hex digits, the length of that same part;
- ``id``: ``SIA-DCS``, ``ADM-CID`` (Contact ID) or ``NULL`` (link test; others are answered
  DUH by the receiver: ``MESSAGE_IDS``), ``*`` in front when
  the rest is encrypted (AES-CBC, zero IV, 128/192/256-bit key; the plaintext starts with
  random padding up to ``|`` and must carry a timestamp);
- ``timestamp``: ``_HH:MM:SS,MM-DD-YYYY`` in UTC.

Answers: ``ACK`` (stored), ``NAK`` (bad frame or timestamp; never encrypted, carries our
time so the panel can correct its clock), ``DUH`` (a correct frame we cannot process).
Parsing is pure and bounded: no I/O, no regex backtracking over attacker-sized input (frames
are at most ``MAX_FRAME`` bytes).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from gateway.ingest.reasons import Reason

MAX_FRAME = 4200  # LF + 8 + 0xFFF (the length field's largest value) + CR, with some slack
LF, CR = 0x0A, 0x0D
MESSAGE_IDS = frozenset({"SIA-DCS", "ADM-CID", "NULL"})
_PAD_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_IV = bytes(16)
_HEADER = re.compile(
    r'"(?P<star>\*?)(?P<id>[A-Z][A-Z-]{1,15})"'
    r"(?P<seq>[0-9]{4})"
    r"(?:R(?P<rcvr>[0-9A-Fa-f]{1,6}))?"
    r"L(?P<line>[0-9A-Fa-f]{1,6})"
    r"#(?P<acct>[0-9A-Fa-f]{3,16})"
    r"\["
)
_HEX_KEY = re.compile(r"[0-9A-Fa-f]{32}|[0-9A-Fa-f]{48}|[0-9A-Fa-f]{64}")
_TIMESTAMP = re.compile(r"_(\d{2}):(\d{2}):(\d{2}),(\d{2})-(\d{2})-(\d{4})$")


class FrameError(Exception):
    """The frame cannot be used; ``reason`` goes to the quarantine record."""

    def __init__(self, reason: Reason, detail: str, account: str | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.account = account


@dataclass(frozen=True, slots=True)
class Header:
    """What can be read before decryption."""

    message_id: str  # SIA-DCS, ADM-CID, NULL
    encrypted: bool
    sequence: str  # four digits, echoed in the answer
    receiver: str | None
    line: str
    account: str  # upper-case hex
    rest: str  # after the "[": plaintext data, or the hex ciphertext


@dataclass(frozen=True, slots=True)
class Message:
    header: Header
    data: str  # inside the brackets, without a leading "#acct|"
    extended: tuple[str, ...]  # [x…] blocks after the data
    timestamp: datetime | None


def crc16(data: bytes) -> int:
    """CRC-16/ARC (polynomial 0x8005 reflected, initial 0), as DC-09 specifies."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def split_frame(frame: bytes) -> bytes:
    """Check CRC and length; returns the checked body (quote of the id to the timestamp)."""
    if len(frame) > MAX_FRAME:
        raise FrameError(Reason.OVERSIZE, f"frame of {len(frame)} bytes (at most {MAX_FRAME})")
    text = frame.strip(b"\r\n\x00 ")
    if len(text) < 10 or text[8:9] != b'"':
        raise FrameError(Reason.MALFORMED_FRAME, "no CRC, length and id at the start")
    crc_field, length_field, body = text[:4], text[4:8], text[8:]
    try:
        sent_crc = int(crc_field, 16)
        length = int(length_field, 16)
    except ValueError:
        raise FrameError(Reason.MALFORMED_FRAME, "CRC or length is not hex") from None
    if not re.fullmatch(rb"[0-9A-Fa-f]{4}", crc_field) or length_field[:1] != b"0":
        raise FrameError(Reason.MALFORMED_FRAME, "CRC or length field malformed")
    if crc16(body) != sent_crc:
        raise FrameError(
            Reason.BAD_CRC, f"CRC {crc_field.decode()} does not match {crc16(body):04X}"
        )
    if length != len(body):
        raise FrameError(Reason.BAD_LENGTH, f"length field {length} but {len(body)} bytes")
    return body


def parse_header(body: bytes) -> Header:
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise FrameError(Reason.MALFORMED_FRAME, "non-ASCII bytes in the frame") from None
    m = _HEADER.match(text)
    if m is None:
        raise FrameError(Reason.MALFORMED_FRAME, 'header is not "id"seq[R]L#acct[')
    return Header(
        message_id=m["id"],
        encrypted=bool(m["star"]),
        sequence=m["seq"],
        receiver=m["rcvr"],
        line=m["line"],
        account=m["acct"].upper(),
        rest=text[m.end() :],
    )


def decrypt(header: Header, key: bytes) -> str:
    """The plaintext after the padding's ``|`` (data, ``]``, extended data, timestamp)."""
    hex_text = header.rest
    if not hex_text or len(hex_text) % 32 or not re.fullmatch(r"[0-9A-Fa-f]+", hex_text):
        raise FrameError(
            Reason.DECRYPT_FAILED, "encrypted part is not whole AES blocks in hex", header.account
        )
    decryptor = Cipher(algorithms.AES(key), modes.CBC(_IV)).decryptor()
    plain = decryptor.update(bytes.fromhex(hex_text)) + decryptor.finalize()
    try:
        text = plain.decode("ascii")
    except UnicodeDecodeError:
        raise FrameError(
            Reason.DECRYPT_FAILED, "the key does not open it (not ASCII)", header.account
        ) from None
    pad, bar, rest = text.partition("|")
    if not bar or "[" in pad or "]" in pad or not text.isprintable():
        raise FrameError(
            Reason.DECRYPT_FAILED, "the key does not open it (no padding mark)", header.account
        )
    return rest


def parse_message(header: Header, plaintext: str | None = None) -> Message:
    """Data, extended data and timestamp of a frame (``plaintext`` for encrypted ones)."""
    rest = header.rest if plaintext is None else plaintext
    close = rest.find("]")
    if close < 0:
        raise FrameError(Reason.MALFORMED_FRAME, "data block is not closed", header.account)
    data, tail = rest[:close], rest[close + 1 :]
    if data.startswith("#"):  # "#acct|data": the account repeated inside the block
        acct, bar, after = data[1:].partition("|")
        if not bar:
            after = ""  # "#acct" alone (a NULL message)
        if acct.upper() != header.account:
            raise FrameError(
                Reason.MALFORMED_FRAME, "account inside the block differs", header.account
            )
        data = after
    extended: list[str] = []
    while tail.startswith("["):
        end = tail.find("]")
        if end < 0:
            raise FrameError(Reason.MALFORMED_FRAME, "extended data not closed", header.account)
        extended.append(tail[1:end])
        tail = tail[end + 1 :]
    timestamp = None
    if tail:
        m = _TIMESTAMP.fullmatch(tail)
        if m is None:
            raise FrameError(
                Reason.MALFORMED_FRAME, "trailing text is not a timestamp", header.account
            )
        hh, mi, ss, mo, dd, yyyy = (int(g) for g in m.groups())
        try:
            timestamp = datetime(yyyy, mo, dd, hh, mi, ss, tzinfo=UTC)
        except ValueError:
            raise FrameError(
                Reason.MALFORMED_FRAME, "impossible timestamp", header.account
            ) from None
    if header.encrypted and timestamp is None:
        raise FrameError(
            Reason.STALE_TIMESTAMP, "encrypted message without a timestamp", header.account
        )
    return Message(header, data, tuple(extended), timestamp)


def parse_key(text: str) -> bytes | None:
    """An AES key as panels are configured with it: 32, 48 or 64 hex digits (16, 24 or 32
    bytes), or 16, 24 or 32 characters used as they are (some panels, and pysiaalarm, take
    the key that way). ``hex:`` or ``ascii:`` in front says which when both could be meant.
    None when it is neither."""
    text = text.strip()
    kind, colon, rest = text.partition(":")
    if colon and kind in ("hex", "ascii"):
        text = rest
    else:
        kind = "hex" if _HEX_KEY.fullmatch(text) else "ascii"
    if kind == "hex":
        try:
            key = bytes.fromhex(text)
        except ValueError:
            return None
    elif text.isascii() and text.isprintable():
        key = text.encode("ascii")
    else:
        return None
    return key if len(key) in (16, 24, 32) else None


# -- answers ------------------------------------------------------------------------------
def _wrap(body: str) -> bytes:
    raw = body.encode("ascii")
    return b"\n%04X0%03X" % (crc16(raw), len(raw)) + raw + b"\r"


def timestamp_text(at: datetime) -> str:
    return at.astimezone(UTC).strftime("_%H:%M:%S,%m-%d-%Y")


def encrypt(plain: str, key: bytes) -> str:
    """Random padding up to a whole number of AES blocks, ``|``, then ``plain``; hex."""
    pad_len = -(len(plain) + 1) % 16
    pad = "".join(secrets.choice(_PAD_CHARS) for _ in range(pad_len))
    encryptor = Cipher(algorithms.AES(key), modes.CBC(_IV)).encryptor()
    data = (pad + "|" + plain).encode("ascii")
    return (encryptor.update(data) + encryptor.finalize()).hex().upper()


def _route(header: Header) -> str:
    receiver = f"R{header.receiver}" if header.receiver is not None else ""
    return f"{header.sequence}{receiver}L{header.line}#{header.account}["


def ack(header: Header, key: bytes | None, now: datetime) -> bytes:
    """Positive acknowledgement, echoing sequence, receiver, line and account; encrypted
    (with a timestamp) when the message was."""
    if header.encrypted and key is not None:
        return _wrap(f'"*ACK"{_route(header)}{encrypt("]" + timestamp_text(now), key)}')
    return _wrap(f'"ACK"{_route(header)}]')


def duh(header: Header) -> bytes:
    """The message was received correctly but cannot be processed."""
    return _wrap(f'"DUH"{_route(header)}]')


def nak(now: datetime) -> bytes:
    """Negative acknowledgement: never encrypted, no account, our time for the panel."""
    return _wrap(f'"NAK"0000R0L0A0[]{timestamp_text(now)}')


# -- building frames (the simulator, tests) -----------------------------------------------
def build_frame(
    message_id: str,
    sequence: int,
    account: str,
    data: str,
    *,
    key: bytes | None = None,
    at: datetime | None = None,
    receiver: str | None = "1",
    line: str = "1",
) -> bytes:
    """A panel's frame: ``[#acct|data]`` plus the timestamp (required when encrypted)."""
    route = f"{sequence:04d}{f'R{receiver}' if receiver is not None else ''}L{line}#{account}["
    block = f"#{account}|{data}]" if data else "]"
    stamp = timestamp_text(at) if at is not None else ""
    if key is not None:
        if at is None:
            raise ValueError("an encrypted frame needs a timestamp")
        return _wrap(f'"*{message_id}"{route}{encrypt(block + stamp, key)}')
    return _wrap(f'"{message_id}"{route}{block}{stamp}')
