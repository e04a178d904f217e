"""The profile file format. See ``docs/profiles.md`` for the guide.

A field is given either as a JMESPath expression string evaluated over
``{"payload": <decoded payload>, "topic": {<named captures>}}`` or as an object::

    {expr: "payload.code", map: {"1": access_granted}, default: null, scale: 0.01}
    {value: "site-a"}                         # a fixed value

``kind`` and ``type`` are the exception: a bare string there is a fixed enum value.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from device_adapters.profiles.expressions import compile_expression
from device_adapters.profiles.topics import TopicPattern, compile_topic
from gateway.events import ATTRIBUTE_MODELS, DeviceKind, EventType

PERSONAL_ATTRIBUTES = frozenset({"card_ref", "person_ref"})
_SPECIAL_ATTRIBUTES = frozenset({"kind", "extra", "card_masked"})


_ANY_ATTRIBUTE = frozenset().union(*(m.model_fields for m in ATTRIBUTE_MODELS.values())) - {
    "kind",
    "extra",
    "card_masked",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_compile = compile_expression


class FieldSpec(_Strict):
    expr: str | None = Field(None, description="JMESPath over {payload, topic}")
    value: Any = Field(None, description="Fixed value (instead of expr)")
    map: dict[str, Any] | None = Field(None, description="Lookup of the result (keys as strings)")
    default: Any = Field(None, description="Used when the result is null or not in map")
    scale: float | None = Field(
        None, description="Multiply a numeric result (e.g. 0.01 for percent)"
    )

    @model_validator(mode="after")
    def _one_source(self) -> FieldSpec:
        if (self.expr is None) == (self.value is None):
            raise ValueError("give exactly one of expr or value")
        if self.expr is not None:
            _compile(self.expr)  # fail at load time, naming the expression
        return self


def _as_spec(value: Any, *, literal: bool = False) -> Any:
    """Shorthand: a bare string is an expression (or, for kind/type, a fixed value)."""
    if isinstance(value, str):
        return {"value": value} if literal else {"expr": value}
    return value


class TimeSpec(_Strict):
    expr: str
    format: str = Field(
        "auto",
        description="auto | iso8601 | epoch_s | epoch_ms | a strptime pattern such as %Y-%m-%d %H:%M:%S",
    )
    tz: str | None = Field(None, description="Zone for naive times; defaults to the gateway's")

    @model_validator(mode="after")
    def _compile_expr(self) -> TimeSpec:
        _compile(self.expr)
        if self.tz is not None:
            from zoneinfo import ZoneInfo

            try:
                ZoneInfo(self.tz)
            except Exception as exc:
                raise ValueError(f"unknown timezone {self.tz!r}") from exc
        return self


class AttributesFrom(_Strict):
    """Take a whole object's keys as attributes: cheaper than one expression per field, and
    new keys need no profile change. Keys that are not fields of the kind go to ``extra``."""

    expr: str = Field(..., description="JMESPath to an object, e.g. payload.attrs")
    rename: dict[str, str] = Field(default_factory=dict, description="payload key → attribute name")

    @model_validator(mode="after")
    def _check(self) -> AttributesFrom:
        _compile(self.expr)
        for key, target in self.rename.items():
            if target not in _ANY_ATTRIBUTE and not target.startswith("extra."):
                raise ValueError(f"rename[{key!r}]: {target!r} is not an attribute name")
        return self


class Mapping(_Strict):
    """How one kind of message on one topic becomes an event."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    id: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    topic: list[str] = Field(..., min_length=1)
    format: Literal["json", "text", "json_or_text"] = "json"
    when: str | None = Field(
        None, description="JMESPath predicate; the mapping applies when truthy"
    )
    device_id: FieldSpec
    site: FieldSpec | None = Field(
        None, description="Default: the site the device is registered in"
    )
    kind: FieldSpec | None = Field(None, description="Default: the registered device's kind")
    type: FieldSpec
    event_id: FieldSpec | None = Field(None, description="The device's own event id / sequence")
    occurred_at: TimeSpec | None = Field(None, description="Default: time received")
    attributes_from: AttributesFrom | None = None
    attributes: dict[str, FieldSpec] = {}
    continue_: bool = Field(False, alias="continue", description="Also try later mappings")
    _topics: list[TopicPattern] = PrivateAttr(default_factory=list)

    @field_validator("topic", mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @field_validator("device_id", "site", "event_id", mode="before")
    @classmethod
    def _expr_shorthand(cls, v: Any) -> Any:
        return _as_spec(v)

    @field_validator("kind", "type", mode="before")
    @classmethod
    def _literal_shorthand(cls, v: Any) -> Any:
        return _as_spec(v, literal=True)

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _time_shorthand(cls, v: Any) -> Any:
        return {"expr": v} if isinstance(v, str) else v

    @field_validator("attributes", mode="before")
    @classmethod
    def _attr_shorthand(cls, v: Any) -> Any:
        return {k: _as_spec(x) for k, x in v.items()} if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _check(self) -> Mapping:
        self._topics = [compile_topic(t) for t in self.topic]
        if self.when is not None:
            _compile(self.when)
        if self.kind is not None and self.kind.value is not None:
            kind = DeviceKind(self.kind.value)
            allowed = set(ATTRIBUTE_MODELS[kind].model_fields) - _SPECIAL_ATTRIBUTES
        else:
            allowed = set().union(*(m.model_fields for m in ATTRIBUTE_MODELS.values()))
            allowed -= _SPECIAL_ATTRIBUTES
        for name in self.attributes:
            if name.startswith("extra."):
                continue
            if name not in allowed:
                raise ValueError(
                    f"attribute {name!r} is not a field of this kind "
                    f"(allowed: {', '.join(sorted(allowed))}, or extra.<name>)"
                )
        if self.type.value is not None:
            EventType(self.type.value)
        if self.type.map:
            for code, target in self.type.map.items():
                if target is not None and target not in EventType.__members__.values():
                    raise ValueError(f"type.map[{code!r}]: {target!r} is not an event type")
        return self

    @property
    def topics(self) -> list[TopicPattern]:
        return self._topics


class Profile(_Strict):
    """One device type (or family): a list of mappings, tried in order."""

    profile: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Profile id")
    name: str
    vendor: str = ""
    description: str = ""
    presets: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Profile-local presets (merged like shared ones)"
    )
    mappings: list[Mapping] = Field(..., min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> Profile:
        ids = [m.id for m in self.mappings]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise ValueError(f"mapping ids repeat: {sorted(dupes)}")
        return self
