"""The listings' opaque pagination cursors, for the HTTP layer (they live in
``gateway.storage.cursor``: the query functions of the domain packages make them too)."""

from gateway.storage.cursor import (
    InvalidCursor,
    decode_int_cursor,
    decode_str_cursor,
    encode_cursor,
)

__all__ = ["InvalidCursor", "decode_int_cursor", "decode_str_cursor", "encode_cursor"]
