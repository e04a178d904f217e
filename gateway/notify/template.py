"""Request bodies built from a JSON template with named placeholders (``{phone}``,
``{text}``, …), for gateways whose field names we do not choose.

The template is data, never code: each string *value* of the template (keys are left
alone) has its ``{name}`` placeholders replaced from a fixed set of names — no ``eval``, no
``str.format`` (whose ``{x.attr}`` and ``{x[0]}`` reach into objects). ``{{`` and ``}}``
are literal braces. A value that is exactly one placeholder takes the value's own type (an
id stays a number). The result is serialised with ``json.dumps``, so a text holding quotes
or braces cannot change the body's structure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
MAX_DEPTH = 8


class TemplateError(ValueError):
    pass


def _walk(node: Any, path: str, depth: int = 0) -> list[tuple[str, str]]:
    """(key path, string) for every string value of the template."""
    if depth > MAX_DEPTH:
        raise TemplateError(f"{path or 'body'}: nested deeper than {MAX_DEPTH} levels")
    if isinstance(node, str):
        return [(path, node)]
    if isinstance(node, Mapping):
        out: list[tuple[str, str]] = []
        for key, value in node.items():
            out += _walk(value, f"{path}.{key}" if path else str(key), depth + 1)
        return out
    if isinstance(node, list):
        out = []
        for i, value in enumerate(node):
            out += _walk(value, f"{path}[{i}]", depth + 1)
        return out
    if node is None or isinstance(node, bool | int | float):
        return []
    raise TemplateError(f"{path or 'body'}: {type(node).__name__} is not a JSON value")


def placeholders(template: Any, known: frozenset[str]) -> set[str]:
    """The placeholder names ``template`` uses; ``TemplateError`` for an unknown name or a
    lone brace (write ``{{``/``}}`` for a literal one), naming the value's key path."""
    used: set[str] = set()
    for path, text in _walk(template, ""):
        for m in _TOKEN.finditer(text):
            token = m.group(0)
            if token in ("{{", "}}"):
                continue
            name = m.group(1)
            if name is None:
                raise TemplateError(f"{path}: lone {token!r} (write {token * 2!r} for a brace)")
            if name not in known:
                raise TemplateError(
                    f"{path}: unknown placeholder {{{name}}}; known: "
                    + ", ".join(f"{{{k}}}" for k in sorted(known))
                )
            used.add(name)
    return used


def _fill(text: str, values: Mapping[str, Any]) -> Any:
    m = _TOKEN.fullmatch(text)
    if m is not None and m.group(1) is not None:
        return values[m.group(1)]  # exactly one placeholder: keep the value's type

    def sub(m: re.Match[str]) -> str:
        token = m.group(0)
        if token in ("{{", "}}"):
            return token[0]
        return str(values[m.group(1)])

    return _TOKEN.sub(sub, text)


def render(template: Any, values: Mapping[str, Any]) -> Any:
    """``template`` with its placeholders filled from ``values`` (checked beforehand with
    ``placeholders``)."""
    if isinstance(template, str):
        return _fill(template, values)
    if isinstance(template, Mapping):
        return {key: render(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [render(value, values) for value in template]
    return template
