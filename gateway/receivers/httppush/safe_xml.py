"""Device XML read safely: no DTD, no entity, no external reference (defusedxml refuses them
before they expand), bounded size and nesting; then a plain dictionary for the profiles.

The dictionary keeps element names without their namespace, text as strings, and repeated
elements as lists (``<a><b>1</b><b>2</b></a>`` → ``{"b": ["1", "2"]}``); attributes are
dropped (the event documents carry none that matter).
"""

from __future__ import annotations

from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from gateway.ingest.reasons import Reason
from gateway.receivers.httppush.errors import Refused

MAX_ELEMENTS = 5000


def _name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_xml(raw: bytes, *, max_depth: int = 32, max_elements: int = MAX_ELEMENTS) -> Any:
    """``{root name: content}`` for ``raw``, or :class:`Refused` (400) with the reason."""
    try:
        root = fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise Refused(400, Reason.FORBIDDEN_XML, f"refused: {type(exc).__name__}") from exc
    except ParseError as exc:
        raise Refused(400, Reason.MALFORMED_XML, str(exc)[:200]) from exc
    except ValueError as exc:  # e.g. an encoding declaration the parser cannot use
        raise Refused(400, Reason.MALFORMED_XML, str(exc)[:200]) from exc
    return {_name(root.tag): _content(root, max_depth, max_elements)}


def _content(root: Element, max_depth: int, max_elements: int) -> Any:
    """The element tree as nested dictionaries, built without recursion."""
    seen = 0
    out: dict[int, Any] = {}
    # Post-order walk: children are converted before their parent.
    stack: list[tuple[Element, int, bool]] = [(root, 1, False)]
    while stack:
        element, depth, expanded = stack.pop()
        if not expanded:
            seen += 1
            if seen > max_elements:
                raise Refused(400, Reason.OVERSIZE, f"more than {max_elements} XML elements")
            if depth > max_depth:
                raise Refused(400, Reason.TOO_DEEP, f"XML nesting depth > {max_depth}")
            stack.append((element, depth, True))
            stack.extend((child, depth + 1, False) for child in element)
            continue
        children = list(element)
        if not children:
            out[id(element)] = (element.text or "").strip()
            continue
        node: dict[str, Any] = {}
        for child in children:
            key, value = _name(child.tag), out.pop(id(child))
            if key in node:
                if not isinstance(node[key], _Repeated):
                    node[key] = _Repeated([node[key]])
                node[key].append(value)
            else:
                node[key] = value
        out[id(element)] = node
    return _plain(out[id(root)])


class _Repeated(list[Any]):
    """A list made of repeated elements, while the tree is built."""


def _plain(value: Any) -> Any:
    """Repeated-element lists back to plain lists (JSON-serialisable, comparable)."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                if isinstance(child, _Repeated):
                    node[key] = child = list(child)
                stack.append(child)
        elif isinstance(node, list):
            stack.extend(node)
    return value
