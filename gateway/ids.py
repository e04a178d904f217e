"""One grammar for identifiers, and what a display name may not hold.

**Ids** (sites, places, devices, cameras, grid areas, people, households, neighbour groups,
beats, account names) end up in MQTT topic levels, URLs, file names, log lines, HTML
attributes and CSV cells. One grammar fits all of them::

    id = [A-Za-z0-9] [A-Za-z0-9_.:@~-]*      at most 64 characters (device ids: 128)

So an id has no ``/ + #`` (MQTT separators and wildcards), no quotes, ``< > &``, spaces,
control or invisible characters, never starts with ``$`` (broker topics) or a character a
spreadsheet would run (``= + - @``), and is never ``.`` or ``..``. Device ids may be longer
because vendors' serial numbers are.

**Names** (a person's, a device's, a site's, a display name) are free text for people to
read, but refuse characters that break storage or spoof the display: control characters
(NUL included), lone surrogates, line/paragraph separators and the bidirectional embedding,
override and isolate controls (U+202A–U+202E, U+2066–U+2069, LRM/RLM/ALM).

Bottom layer: imports nothing of the gateway; config models, the API and ingest use it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import AfterValidator, WithJsonSchema

ID_MAX = 64
DEVICE_ID_MAX = 128
ID_CHARS = "A-Za-z0-9_.:@~-"
ID_PATTERN = rf"^[A-Za-z0-9][{ID_CHARS}]*$"
_ID = re.compile(ID_PATTERN)
ID_RULE = (
    "letters a-z A-Z, digits and _ . : @ ~ - only, starting with a letter or digit "
    "(no spaces, quotes, slashes or MQTT wildcards)"
)

# What no database column can take: NUL (PostgreSQL refuses it in text) and lone UTF-16
# surrogates (not encodable as UTF-8). Refused at the HTTP edge (gateway.api.storable).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_SEPARATORS = frozenset("\u2028\u2029")


def id_problem(value: str, max_length: int = ID_MAX) -> str | None:
    """Why ``value`` is not an id (None: it is one)."""
    if not value:
        return "an id may not be empty"
    if len(value) > max_length:
        return f"an id has at most {max_length} characters"
    if not _ID.match(value):
        return f"an id may hold {ID_RULE}"
    return None


def is_id(value: object, max_length: int = ID_MAX) -> bool:
    return isinstance(value, str) and id_problem(value, max_length) is None


def check_id(value: str, max_length: int = ID_MAX) -> str:
    problem = id_problem(value, max_length)
    if problem is not None:
        raise ValueError(problem)
    return value


def check_device_id(value: str) -> str:
    return check_id(value, DEVICE_ID_MAX)


def first_bad_device_id(device_ids: Iterable[str]) -> str | None:
    """For ingest: a message naming a device id outside the grammar is quarantined. Returns
    the reason (the id quoted with ``repr``, so control characters show escaped), or None."""
    for device_id in device_ids:
        problem = id_problem(device_id, DEVICE_ID_MAX)
        if problem is not None:
            return f"device id {device_id[: DEVICE_ID_MAX + 1]!r}: {problem}"
    return None


def storable(value: str) -> str:
    """``value`` with unstorable characters replaced by U+FFFD (for records of refusals)."""
    return UNSTORABLE.sub("\ufffd", value)


def name_problem(value: str) -> str | None:
    """Why ``value`` may not be a display name (None: it may)."""
    for ch in value:
        if ch in BIDI_CONTROLS:
            return f"bidirectional control character U+{ord(ch):04X} is not allowed in a name"
        if ch in _SEPARATORS:
            return f"line separator U+{ord(ch):04X} is not allowed in a name"
        category = unicodedata.category(ch)
        if category == "Cc":
            return f"control character U+{ord(ch):04X} is not allowed in a name"
        if category == "Cs":
            return "a lone surrogate is not allowed in a name"
    return None


def check_name(value: str) -> str:
    problem = name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _id_schema(max_length: int) -> dict[str, Any]:
    return {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": ID_PATTERN}


Id = Annotated[str, AfterValidator(check_id), WithJsonSchema(_id_schema(ID_MAX))]
"""An id of a site, place, grid area, person, household, … (pydantic field type)."""

DeviceId = Annotated[
    str, AfterValidator(check_device_id), WithJsonSchema(_id_schema(DEVICE_ID_MAX))
]
"""A device (or camera) id: the id grammar, up to 128 characters."""

Name = Annotated[str, AfterValidator(check_name)]
"""A display name: free text without control, bidi-override or separator characters."""
