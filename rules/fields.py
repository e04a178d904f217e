"""Field paths used by ``group_by``, attribute filters and watch lists.

A path is one of ``site``, ``device_id``, ``kind``, ``type``, ``zone`` (event zone, else the
device's registered zone), ``attributes.<name>``, ``attributes.extra.<key>`` or
``device.<label>`` (from the optional device-label lookup).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum

from gateway.events import ATTRIBUTE_MODELS
from rules.context import Ctx

FieldGetter = Callable[[Ctx], object]

ATTRIBUTE_NAMES: frozenset[str] = frozenset(
    name for model in ATTRIBUTE_MODELS.values() for name in model.model_fields if name != "kind"
)
_TOP = ("site", "device_id", "kind", "type", "zone")


def check_field_path(path: str) -> str:
    """Validate a field path; raises ValueError naming what is wrong."""
    if path in _TOP:
        return path
    head, _, rest = path.partition(".")
    if head == "device" and rest and "." not in rest:
        return path
    if head == "attributes" and rest:
        if rest.startswith("extra.") and len(rest) > len("extra."):
            return path
        if rest in ATTRIBUTE_NAMES and rest != "extra":
            return path
        raise ValueError(
            f"unknown attribute {rest!r}; known: {', '.join(sorted(ATTRIBUTE_NAMES))} "
            "or extra.<key>"
        )
    raise ValueError(
        f"unknown field {path!r}; use {', '.join(_TOP)}, attributes.<name>, "
        "attributes.extra.<key> or device.<label>"
    )


def _plain(value: object) -> object:
    return value.value if isinstance(value, Enum) else value


def compile_getter(path: str) -> FieldGetter:
    """A fast accessor for a validated field path."""
    if path == "site":
        return lambda c: c.event.site
    if path == "device_id":
        return lambda c: c.event.device_id
    if path == "kind":
        return lambda c: c.event.kind.value
    if path == "type":
        return lambda c: c.event.type.value
    if path == "zone":
        return lambda c: c.zone
    head, _, rest = path.partition(".")
    if head == "device":
        return lambda c: c.labels.get(rest)
    if rest.startswith("extra."):
        key = rest[len("extra.") :]
        return lambda c: c.event.attributes.extra.get(key)
    return lambda c: _plain(getattr(c.event.attributes, rest, None))


def compile_key(paths: list[str]) -> Callable[[Ctx], str]:
    """Group key from several paths: ``device_id=d1,door=main`` (missing values show as ``-``)."""
    getters = [(p.rsplit(".", 1)[-1], compile_getter(p)) for p in paths]
    if not getters:
        return lambda c: "*"
    if len(getters) == 1:
        name, get = getters[0]

        def one(c: Ctx) -> str:
            v = get(c)
            return f"{name}={'-' if v is None else v}"

        return one

    def many(c: Ctx) -> str:
        parts = []
        for name, get in getters:
            v = get(c)
            parts.append(f"{name}={'-' if v is None else v}")
        return ",".join(parts)

    return many
