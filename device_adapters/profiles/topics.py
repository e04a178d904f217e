"""Topic patterns with named captures: ``lianfang/{site}/{device}/event``.

``{name}`` matches one level (MQTT ``+``), ``{name:#}`` the rest (MQTT ``#``, last only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_PLACEHOLDER = re.compile(r"^\{([a-z_][a-z0-9_]*)(:#)?\}$")


@dataclass(frozen=True)
class TopicPattern:
    pattern: str
    subscription: str
    regex: re.Pattern[str]

    def match(self, topic: str) -> dict[str, str] | None:
        m = self.regex.fullmatch(topic)
        return m.groupdict() if m else None


def compile_topic(pattern: str) -> TopicPattern:
    """Compile a pattern; raise ValueError with the reason when it is malformed."""
    if not pattern or pattern.startswith("$"):
        raise ValueError("topic pattern must be non-empty and not a $SYS topic")
    levels = pattern.split("/")
    sub_parts: list[str] = []
    rx_parts: list[str] = []
    names: set[str] = set()
    for i, level in enumerate(levels):
        m = _PLACEHOLDER.match(level)
        if m:
            name, multi = m.group(1), m.group(2)
            if name in names:
                raise ValueError(f"placeholder {{{name}}} used twice")
            names.add(name)
            if multi:
                if i != len(levels) - 1:
                    raise ValueError("{name:#} may only be the last level")
                sub_parts.append("#")
                rx_parts.append(f"(?P<{name}>.+)")
            else:
                sub_parts.append("+")
                rx_parts.append(f"(?P<{name}>[^/]+)")
        elif level in ("+", "#"):
            sub_parts.append(level)
            rx_parts.append("[^/]+" if level == "+" else ".+")
        elif any(c in level for c in "{}+#"):
            raise ValueError(f"bad topic level {level!r}: use {{name}} or {{name:#}}")
        else:
            sub_parts.append(level)
            rx_parts.append(re.escape(level))
    return TopicPattern(pattern, "/".join(sub_parts), re.compile("/".join(rx_parts)))
