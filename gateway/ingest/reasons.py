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
    ADAPTER_ERROR = "adapter_error"  # a Python adapter raised unexpectedly
