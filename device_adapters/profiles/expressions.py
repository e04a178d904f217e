"""JMESPath expressions, compiled once into callables.

Parsing and semantics are JMESPath's (the ``jmespath`` library). Plain field paths such as
``payload.attrs.door`` — most of every profile — are turned into direct dict look-ups, which
are ~10x faster than walking the AST per message; anything else is run by jmespath's own
interpreter, reused rather than rebuilt per call.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.visitor import Options, TreeInterpreter

Expression = Callable[[Any], Any]

_interpreter = TreeInterpreter(Options())


def _field_path(node: dict[str, Any]) -> list[str] | None:
    if node["type"] == "field":
        return [node["value"]]
    if node["type"] == "subexpression":
        path: list[str] = []
        for child in node["children"]:
            part = _field_path(child)
            if part is None:
                return None
            path.extend(part)
        return path
    return None


def _getter(path: list[str]) -> Expression:
    def get(doc: Any) -> Any:
        for key in path:
            if not isinstance(doc, dict):
                return None
            doc = doc.get(key)
        return doc

    return get


def compile_expression(expr: str) -> Expression:
    """Compile; raise ValueError naming the expression when it is not valid JMESPath."""
    try:
        tree = jmespath.compile(expr).parsed
    except JMESPathError as exc:
        raise ValueError(f"invalid JMESPath expression {expr!r}: {exc}") from exc
    node: dict[str, Any] = dict(tree)
    path = _field_path(node)
    if path is not None:
        return _getter(path)
    fast = _comparison(node)
    if fast is not None:
        return fast
    return lambda doc: _interpreter.visit(tree, doc)


def _comparison(node: dict[str, Any]) -> Expression | None:
    """``a.b == `1``` / ``!=`` against a scalar literal, with JMESPath's equality rules."""
    if node["type"] != "comparator" or node["value"] not in ("eq", "ne"):
        return None
    left, right = node["children"]
    if right["type"] != "literal" and left["type"] == "literal":
        left, right = right, left
    path = _field_path(left)
    literal = right.get("value") if right["type"] == "literal" else None
    if path is None or right["type"] != "literal" or isinstance(literal, dict | list):
        return None
    get = _getter(path)
    negate = node["value"] == "ne"

    def compare(doc: Any) -> bool:
        value = get(doc)
        # JMESPath: true/false never equal 1/0 (Python's bool is an int; JMESPath's is not).
        same = bool(value == literal) and isinstance(value, bool) == isinstance(literal, bool)
        return bool(same != negate)

    return compare
