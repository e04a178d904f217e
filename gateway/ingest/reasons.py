"""Why a message did not become an event. Every quarantined message carries one."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    OVERSIZE = "oversize"  # payload larger than ingest.max_payload_bytes
    INVALID_UTF8 = "invalid_utf8"  # bytes that are not UTF-8
    MALFORMED_JSON = "malformed_json"  # not JSON (JSONDecodeError)
    TOO_DEEP = "too_deep"  # nesting beyond ingest.max_json_depth (or RecursionError)
    INVALID_TEXT = "invalid_text"  # lone surrogates or NUL that storage cannot hold
    NO_PROFILE = "no_profile"  # no adapter takes this topic
    NO_MATCH = "no_match"  # an adapter takes the topic but no mapping matches the payload
    INVALID_EVENT = "invalid_event"  # a mapping matched but produced invalid values
    UNKNOWN_DEVICE = "unknown_device"  # device not in the site registry
    ADAPTER_ERROR = "adapter_error"  # a Python adapter raised unexpectedly
    # HTTP push receivers (gateway/receivers: GA/T 1400, Hikvision ISAPI)
    DUPLICATE_KEY = "duplicate_key"  # a JSON object naming one key twice
    MALFORMED_XML = "malformed_xml"  # not well-formed XML
    FORBIDDEN_XML = "forbidden_xml"  # XML with a DTD, entity or external reference (refused)
    MALFORMED_BODY = (
        "malformed_body"  # a body whose envelope (multipart, list object) is unreadable
    )
    UNAUTHENTICATED = "unauthenticated"  # wrong credentials, or not registered
