"""Personal identifiers (card, ID and phone numbers, person references) never leave as raw text.

They are replaced by a keyed hash (stable, so rules and watch lists can still compare them)
and a masked form for display. Phone numbers of grid people and household contacts are
also kept encrypted (AES-256-GCM), because the police desk calling a household and the
SMS driver need them back; only ``pii:read`` roles may reveal one (an audited action).

One key, from ``LIANFANG_PII_KEY`` or a 0600 key file: the hashing key is the key itself,
the encryption key is derived from it (HKDF-SHA256, its own label). Without a configured
key (tests, ``profile test``) hashes use a per-process random key and no number is
encrypted: nothing reversible is stored under a key that would be lost at exit.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import re
import secrets
import stat
import traceback
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

log = logging.getLogger(__name__)

KEY_ENV = "LIANFANG_PII_KEY"
KEY_FILE = "pii.key"
PHONE_FORMAT = "v1"  # v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>
_PHONE_INFO = b"lianfang/phone/aes-256-gcm/v1"


class PiiKeyError(RuntimeError):
    """The personal-data key is missing, unsafe, or not the one a value was encrypted with."""


_key: bytes | None = None
_phone: tuple[str, AESGCM] | None = None  # (key id, cipher) of the configured key
_warned_unconfigured = False


def load_pii_key(data_dir: Path | None = None) -> bytes:
    """The key: ``LIANFANG_PII_KEY`` env, else ``<data_dir>/pii.key`` (created 0600 on first
    use; refused when readable by group or others)."""
    env = os.environ.get(KEY_ENV)
    if env:
        return env.encode()
    if data_dir is None:
        raise PiiKeyError(f"{KEY_ENV} is not set and no data directory to keep a key in")
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PiiKeyError(f"{path} must not be readable by group/others (chmod 600)")
    key = path.read_text().strip().encode()
    if not key:
        raise PiiKeyError(f"{path} is empty")
    return key


def _phone_cipher(key: bytes) -> tuple[str, AESGCM]:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PHONE_INFO).derive(key)
    key_id = hashlib.sha256(b"key-id\x00" + derived).hexdigest()[:8]
    return key_id, AESGCM(derived)


def set_pii_key(key: bytes) -> None:
    """Configure the key (hashing and phone encryption) for this process."""
    global _key, _phone
    if not key:
        raise PiiKeyError("empty personal-data key")
    _key = key
    _phone = _phone_cipher(key)


def _current_key() -> bytes:
    global _key
    if _key is None:
        env = os.environ.get(KEY_ENV)
        if env:
            set_pii_key(env.encode())
        else:
            # Without configuration (tests, `profile test`) use a per-process random key:
            # references are consistent within the process but never reversible.
            _key = secrets.token_bytes(32)
    assert _key is not None
    return _key


def _configured_phone() -> tuple[str, AESGCM] | None:
    if _phone is None and _key is None and os.environ.get(KEY_ENV):
        _current_key()
    return _phone


def pseudonymise(value: str, purpose: str = "id") -> str:
    """Keyed hash reference, e.g. ``card:3f9a…`` (16 hex digits)."""
    digest = hmac.new(_current_key(), f"{purpose}\x00{value}".encode(), hashlib.sha256)
    return f"{purpose}:{digest.hexdigest()[:16]}"


def _aad(owner: str) -> bytes:
    return f"phone\x00{owner}".encode()


def encrypt_phone(number: str, owner: str) -> str | None:
    """``number`` encrypted for storage, bound to ``owner`` (``person/<id>``,
    ``household/<id>``) so it cannot be moved to another record. None when no key is
    configured (then only the hash and the masked form are kept)."""
    global _warned_unconfigured
    cipher = _configured_phone()
    if cipher is None:
        if not _warned_unconfigured:
            _warned_unconfigured = True
            log.warning(
                "no personal-data key configured (%s or %s): phone numbers are kept hashed "
                "and masked only, not encrypted",
                KEY_ENV,
                KEY_FILE,
            )
        return None
    key_id, aes = cipher
    nonce = secrets.token_bytes(12)
    sealed = aes.encrypt(nonce, number.encode(), _aad(owner))
    return f"{PHONE_FORMAT}.{key_id}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def decrypt_phone(token: str, owner: str) -> str:
    """The number back; ``PiiKeyError`` (never the number, never a traceback of it) when no
    key is configured, the key is not the one it was encrypted with, or it was altered."""
    cipher = _configured_phone()
    if cipher is None:
        raise PiiKeyError(f"no personal-data key configured ({KEY_ENV} or {KEY_FILE})")
    key_id, aes = cipher
    version, _, rest = token.partition(".")
    stored_id, _, body = rest.partition(".")
    if version != PHONE_FORMAT or not stored_id or not body:
        raise PiiKeyError("not an encrypted phone number (unknown format)")
    if stored_id != key_id:
        raise PiiKeyError(
            f"phone number encrypted with key {stored_id}, but the configured key is {key_id}: "
            f"wrong {KEY_ENV} or {KEY_FILE}?"
        )
    try:
        raw = base64.urlsafe_b64decode(body.encode())
        return aes.decrypt(raw[:12], raw[12:], _aad(owner)).decode()
    except (InvalidTag, ValueError) as exc:
        raise PiiKeyError(
            "phone number cannot be decrypted: altered, or copied from another record"
        ) from exc


def mask_tail(value: str, keep: int = 4) -> str:
    """``12345678`` → ``****5678``; short values are fully masked."""
    if len(value) <= keep:
        return "*" * len(value)
    return "*" * min(len(value) - keep, 8) + value[-keep:]


def mask_plate(plate: str) -> str:
    """``浙A12345`` → ``浙A***45``: province and city letter stay, the middle goes."""
    if len(plate) <= 4:
        return plate[:1] + "*" * (len(plate) - 1)
    return plate[:2] + "*" * (len(plate) - 4) + plate[-2:]


# -- logs ---------------------------------------------------------------------------------

_IDENTIFIERS = re.compile(
    r"(?<![0-9A-Za-z])(?:"
    r"[1-9]\d{16}[\dXx]"  # resident ID card number (18)
    r"|\+?86[- ]?1[3-9]\d{9}"  # mobile with country code
    r"|1[3-9]\d{9}"  # mobile
    r"|0\d{2,3}-\d{7,8}"  # landline with area code
    r")(?![0-9A-Za-z])"
)


# Secrets that must never reach a log line, even quoted in a driver's error: password
# hashes, console session ids and API token secrets.
_SECRETS = re.compile(
    r"\$argon2(?:id|i|d)\$[A-Za-z0-9$=,+/.]*"  # an argon2 password hash
    r"|(?<![0-9A-Za-z])lfs_[A-Za-z0-9_-]{8,}"  # a session id
    r"|(?<![0-9A-Za-z])(lft_[0-9a-f]+_)[A-Za-z0-9_-]{8,}"  # an API token (its id stays)
)


def _secret_mask(m: re.Match[str]) -> str:
    text = m.group(0)
    if text.startswith("$argon2"):
        return "$argon2***"
    return f"{m.group(1)}***" if m.group(1) else "lfs_***"


def redact_identifiers(text: str) -> str:
    """Mobile, landline and ID-card numbers in free text → their masked form; password
    hashes, session ids and token secrets → ``***``."""
    return _IDENTIFIERS.sub(lambda m: mask_tail(m.group(0), 4), _SECRETS.sub(_secret_mask, text))


_installed = False


def install_log_redaction() -> None:
    """Mask phone and ID-card numbers (and password hashes, session ids, token secrets) in
    every log record of this process, whichever logger or handler (uvicorn's included)
    writes it: a record factory formats the message (and an exception's traceback) once and
    masks it. Idempotent."""
    global _installed
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()

    def redacting(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler to report
            return record
        clean = redact_identifiers(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None:
            # An exception's text may quote the value that failed; formatters use exc_text
            # when it is set, so the traceback is formatted (and masked) once, here.
            trace = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            record.exc_text = redact_identifiers(trace)
        return record

    logging.setLogRecordFactory(redacting)
