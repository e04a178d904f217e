"""The common ``expr`` predicates, compiled once into plain closures.

simpleeval walks the expression's tree on every evaluation: 10-20 µs for a predicate such as
``attributes.battery_pct is not None and attributes.battery_pct < 20``, on every event the
rule's structured keys let through. Most predicates use only a small part of the language:
``and``/``or``/``not``, comparisons, names, attribute chains and constants. Those are turned
into nested closures here, built from simpleeval's own operator table and following its
rules step by step (attribute access: no ``_``/``func_`` prefix, no forbidden method names,
``getattr`` then item look-up, no modules or forbidden functions as results; unknown names
and attributes raise simpleeval's errors). Anything else (calls, arithmetic, subscripts,
literals of lists, comprehensions) is not compiled: simpleeval evaluates it as before.
``tests/rules/test_fast_expr.py`` checks both give the same answer or the same error.
"""

from __future__ import annotations

import ast
import contextlib
import types
from collections.abc import Callable, Mapping
from typing import Any

from simpleeval import (
    DISALLOW_FUNCTIONS,
    DISALLOW_METHODS,
    DISALLOW_PREFIXES,
    MAX_STRING_LENGTH,
    AttributeDoesNotExist,
    FeatureNotAvailable,
    NameNotDefined,
    SimpleEval,
)

Names = Mapping[str, Any]
Node = Callable[[Names], Any]

_SAFE_TYPES = frozenset({int, float, str, bool, type(None), bytes, complex})
_MISSING = object()


def _checked(value: Any) -> Any:
    """simpleeval's check on every node's result: no module, no forbidden function."""
    if type(value) in _SAFE_TYPES:
        return value
    if isinstance(value, types.ModuleType):
        raise FeatureNotAvailable("Sorry, modules are not allowed")
    if isinstance(value, list | tuple | set | frozenset):
        for element in value:
            _checked(element)
    elif isinstance(value, dict):
        for element in value.values():
            _checked(element)
    elif callable(value) and value in DISALLOW_FUNCTIONS:
        raise FeatureNotAvailable("This function is forbidden")
    return value


def compile_fast(tree: ast.expr, evaluator: SimpleEval, expr: str) -> Callable[[Names], Any] | None:
    """A closure computing ``tree`` as ``evaluator`` would with those names, or None when
    the expression uses anything beyond the compiled subset."""
    if evaluator.allowed_attrs is not None:
        return None
    try:
        return _node(tree, evaluator, expr)
    except _NotCompiled:
        return None


class _NotCompiled(Exception):
    pass


def _node(node: ast.expr, ev: SimpleEval, expr: str) -> Node:
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, str | bytes) and len(value) > MAX_STRING_LENGTH:
            raise _NotCompiled  # simpleeval refuses it at evaluation: let it
        return lambda _names: value
    if isinstance(node, ast.Name):
        return _name(node.id, ev, expr)
    if isinstance(node, ast.Attribute):
        return _attribute(node, ev, expr)
    if isinstance(node, ast.BoolOp):
        values = tuple(_node(v, ev, expr) for v in node.values)
        if isinstance(node.op, ast.And):
            return lambda names: _all(values, names)
        return lambda names: _any(values, names)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        operator = ev.operators.get(ast.Not)
        if operator is None:
            raise _NotCompiled
        operand = _node(node.operand, ev, expr)
        return lambda names: _checked(operator(operand(names)))
    if isinstance(node, ast.Compare):
        return _compare(node, ev, expr)
    raise _NotCompiled


def _all(values: tuple[Node, ...], names: Names) -> Any:
    result: Any = False
    for value in values:
        result = value(names)
        if not result:
            break
    return result


def _any(values: tuple[Node, ...], names: Names) -> Any:
    result: Any = False
    for value in values:
        result = value(names)
        if result:
            break
    return result


def _name(name: str, ev: SimpleEval, expr: str) -> Node:
    functions = ev.functions

    def get(names: Names) -> Any:
        try:
            return _checked(names[name])
        except KeyError:
            pass
        if name in functions:
            return _checked(functions[name])
        raise NameNotDefined(name, expr)

    return get


def _attribute(node: ast.Attribute, ev: SimpleEval, expr: str) -> Node:
    attr = node.attr
    if any(attr.startswith(p) for p in DISALLOW_PREFIXES) or attr in DISALLOW_METHODS:
        raise _NotCompiled  # simpleeval refuses it at evaluation, with its message
    base = _node(node.value, ev, expr)
    index_fallback = ev.ATTR_INDEX_FALLBACK

    def get(names: Names) -> Any:
        obj = base(names)
        item = _MISSING
        try:
            item = getattr(obj, attr)
        except (AttributeError, TypeError):
            if index_fallback:
                with contextlib.suppress(KeyError, TypeError):
                    item = obj[attr]
        if item is _MISSING:
            raise AttributeDoesNotExist(attr, expr)
        if isinstance(item, types.ModuleType):
            raise FeatureNotAvailable("Sorry, modules are not allowed in attribute access")
        if callable(item) and item in DISALLOW_FUNCTIONS:
            raise FeatureNotAvailable("This function is forbidden")
        return _checked(item)

    return get


def _compare(node: ast.Compare, ev: SimpleEval, expr: str) -> Node:
    operators = []
    for op in node.ops:
        operator = ev.operators.get(type(op))
        if operator is None:
            raise _NotCompiled
        operators.append(operator)
    first = _node(node.left, ev, expr)
    rest = tuple(zip(operators, (_node(c, ev, expr) for c in node.comparators), strict=True))
    if len(rest) == 1:
        ((operator, right),) = rest
        return lambda names: _checked(operator(first(names), right(names)))

    def chain(names: Names) -> Any:
        right = first(names)
        result: Any = True
        for operator, comparator in rest:
            if not result:
                break
            left, right = right, comparator(names)
            result = operator(left, right)
        return _checked(result)

    return chain
