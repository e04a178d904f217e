"""JSON embedded in a page's script block is escaped for that context (gateway/web/embed.py)."""

from __future__ import annotations

import json

from gateway.web.embed import json_script
from gateway.web.routes.pages import env


def test_json_script_escapes_markup_and_line_separators() -> None:
    value = {"name": "</script><img src=x onerror=alert(1)>", "x": "a&b\u2028c\u2029", "n": 1}
    text = str(json_script(value))
    for raw in ("<", ">", "&", "\u2028", "\u2029"):
        assert raw not in text
    assert json.loads(text) == value


def test_base_template_embeds_without_a_second_escape() -> None:
    """The template prints the escaped JSON as it is (no HTML entities JSON.parse would keep)."""
    html = env.get_template("message.html").render(
        t=lambda key: key, lang="zh", other_lang="en", user=None, nav=[], page="login",
        phone=False, version="0", i18n=json_script({"a": "<b>"}), me=json_script({"n": "O'B"}),
        title_key="x", text_key="y",
    )  # fmt: skip
    assert '<script type="application/json" id="me">{"n":"O\'B"}</script>' in html
    assert '{"a":"\\u003cb\\u003e"}' in html
