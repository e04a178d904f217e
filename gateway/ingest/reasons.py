"""Why a message did not become an event. Every quarantined message carries one."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    OVERSIZE = "oversize"  # payload larger than ingest.max_payload_bytes
    INVALID_UTF8 = "invalid_utf8"  # bytes that are not UTF-8
    MALFORMED_JSON = "malformed_json"  # not JSON (JSONDecodeError)
    DUPLICATE_KEY = "duplicate_key"  # a key twice in one JSON object (last-wins is a guess)
    TOO_DEEP = "too_deep"  # nesting beyond ingest.max_json_depth (or RecursionError)
    INVALID_TEXT = "invalid_text"  # lone surrogates or NUL that storage cannot hold
    NO_PROFILE = "no_profile"  # no adapter takes this topic
    NO_MATCH = "no_match"  # an adapter takes the topic but no mapping matches the payload
    INVALID_EVENT = "invalid_event"  # a mapping matched but produced invalid values
    UNKNOWN_DEVICE = "unknown_device"  # device not in the site registry
    INVALID_DEVICE_ID = "invalid_device_id"  # device id outside the id grammar (gateway/ids.py)
    ADAPTER_ERROR = "adapter_error"  # a Python adapter raised unexpectedly
    # push-protocol receivers (gateway/receivers: SIA DC-09, GB/T 28181, GA/T 1400, ISAPI)
    MALFORMED_FRAME = "malformed_frame"  # not a frame of the protocol (framing, grammar)
    BAD_CRC = "bad_crc"  # the frame's checksum does not match its content
    BAD_LENGTH = "bad_length"  # the frame's length field does not match its content
    STALE_TIMESTAMP = "stale_timestamp"  # outside the accepted time window (replay protection)
    DECRYPT_FAILED = "decrypt_failed"  # encrypted content that the account's key does not open
    UNKNOWN_CODE = "unknown_code"  # an event code the receiver does not know
    DUPLICATE = "duplicate"  # a retransmission of a message already stored (answered again)
    MALFORMED_XML = "malformed_xml"  # not well-formed XML, or not of the expected shape
    FORBIDDEN_XML = "forbidden_xml"  # XML with a DTD, entity or external reference (refused)
    MALFORMED_BODY = (
        "malformed_body"  # a body whose envelope (multipart, list object) is unreadable
    )
    UNAUTHENTICATED = "unauthenticated"  # wrong or missing credentials, or not registered
    AUTH_FAILED = "unauthenticated"  # the same reason (an alias used by the SIA/SIP code)
