"""Does an unreadable message look like a panic press?

A message the profiles cannot read (no mapping matches, a field out of range, broken JSON, a
duplicate key, an adapter's bug) is quarantined. When it looks like a panic — a resident's
button, a panel's duress — quarantine alone would leave the resident unheard, so the gateway
raises it as an incident marked 无法解读 / unreadable (``gateway.ingest.unregistered``).

The test is deliberately simple and leans towards raising: a false P1 costs the desk a look
at the raw message; a missed one costs a resident. What counts:

- in a JSON object (any depth up to ``MAX_DEPTH``), a value of an *event-ish* key (``type``,
  ``action``, ``event``, ``alarm`` …) whose words include a panic word (``panic``, ``sos``,
  ``emergency``, ``duress``, 紧急, 求救 …), unless they also include a word that ends or
  tests an alarm (``cancel``, ``restore``, ``test`` …);
- a key that is itself a panic word with a true value (``{"sos": true}``);
- in text that is not JSON, a panic word standing alone, with no cancelling word.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

MAX_DEPTH = 6
MAX_SCAN_BYTES = 16 * 1024  # a panic says so early; a huge blob is not read to the end

EVENT_KEYS = frozenset(
    {
        "type",
        "event",
        "event_type",
        "eventtype",
        "action",
        "alarm",
        "alarm_type",
        "alarmtype",
        "kind",
        "state",
        "status",
        "code",
        "name",
        "cmd",
        "command",
    }
)
PANIC_WORDS = frozenset({"panic", "sos", "emergency", "duress", "hold-up", "holdup"})
PANIC_PHRASES = ("紧急", "求救", "求助", "一键报警", "报警按钮", "挟持", "劫持")
CANCEL_WORDS = frozenset(
    {"cancel", "cancelled", "canceled", "restore", "restored", "clear", "cleared", "reset",
     "test", "end", "ended"}
)  # fmt: skip
# in one value, these also say it is not a press: "sos_off", "panic_battery_low"
NOT_A_PRESS = CANCEL_WORDS | {"off", "false", "battery", "low"}
NOT_A_PRESS_PHRASES = ("取消", "恢复", "测试", "解除")
_WORD = re.compile(r"[a-z]+(?:-[a-z]+)?")
_TEXT_PANIC = re.compile(r"(?<![a-z])(panic|sos|duress)(?![a-z])", re.IGNORECASE)


def _words(value: str) -> set[str]:
    return set(_WORD.findall(value.lower().replace("_", " ")))


def panic_words(value: str) -> bool:
    """A panic word or phrase in ``value``, and nothing that cancels or tests it."""
    words = _words(value)
    panic = bool(words & PANIC_WORDS) or any(p in value for p in PANIC_PHRASES)
    if not panic:
        return False
    return not (words & NOT_A_PRESS) and not any(p in value for p in NOT_A_PRESS_PHRASES)


def _truthy(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "on", "yes", "pressed", "active", "alarm"}
    return False


def _in_json(value: Any, depth: int = 0) -> bool:
    if depth > MAX_DEPTH:
        return False
    if isinstance(value, dict):
        for key, item in value.items():
            name = str(key).lower()
            if isinstance(item, str) and name in EVENT_KEYS and panic_words(item):
                return True
            if name in PANIC_WORDS and _truthy(item):
                return True
            if isinstance(item, dict | list) and _in_json(item, depth + 1):
                return True
        return False
    if isinstance(value, list):
        return any(_in_json(item, depth + 1) for item in value[:64])
    return False


def looks_like_panic(raw: bytes) -> bool:
    """Whether an unreadable message looks like a panic press (module doc)."""
    head = raw[:MAX_SCAN_BYTES]
    try:
        payload = orjson.loads(head)
    except orjson.JSONDecodeError:
        payload = None
    if isinstance(payload, dict | list):
        return _in_json(payload)
    text = head.decode("utf-8", "replace")
    if payload is not None and not isinstance(payload, str):
        return False  # a bare number, true, null
    if isinstance(payload, str):
        text = payload
    if any(p in text for p in PANIC_PHRASES) and not any(p in text for p in NOT_A_PRESS_PHRASES):
        return True
    if not _TEXT_PANIC.search(text):
        return False
    # broken JSON or plain text: a cancel or test among its words is not a press
    return not (_words(text) & CANCEL_WORDS) and not any(p in text for p in NOT_A_PRESS_PHRASES)


__all__ = ["looks_like_panic", "panic_words"]
