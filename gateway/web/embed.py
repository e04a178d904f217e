"""Data embedded in a page, escaped for its context.

``json_script(value)``: JSON for a ``<script type="application/json">`` block. JSON alone is
not safe there: a string holding ``</script>`` ends the block and what follows is markup
(a grid person named ``</script><img src=x onerror=…>`` would run in every page of the
linked account). ``<``, ``>`` and ``&`` are written as JSON escapes (``\\u003c`` …), which
``JSON.parse`` reads back unchanged, and so are U+2028/U+2029, which older JavaScript
parsers take for line ends.
"""

from __future__ import annotations

import json
from typing import Any

from markupsafe import Markup

_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def json_script(value: Any) -> Markup:
    """``value`` as JSON safe inside a ``<script type="application/json">`` element."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return Markup(text.translate(_ESCAPES))
