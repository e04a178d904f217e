"""The rule file schema (strict: unknown keys are rejected). See ``docs/rules.md``."""

from __future__ import annotations

import ast
import re
from datetime import datetime, time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from gateway.events import ATTRIBUTE_MODELS, DeviceKind, EventType
from rules.durations import Duration
from rules.fields import check_field_path

EXPR_NAMES = frozenset(
    {
        "kind",
        "type",
        "site",
        "device_id",
        "zone",
        "attributes",
        "extra",
        "device",
        "hour",
        "weekday",
        "True",
        "False",
        "None",
    }
)
EXPR_FUNCTIONS = frozenset({"in_list", "len", "lower", "upper", "startswith"})
TEMPLATE_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Severity(StrEnum):
    P1 = "P1"  # critical: panic, confirmed intrusion
    P2 = "P2"  # high
    P3 = "P3"  # medium
    P4 = "P4"  # low: maintenance


class Category(StrEnum):
    PANIC = "panic"
    INTRUSION = "intrusion"
    ACCESS = "access"
    VEHICLE = "vehicle"
    DEVICE_HEALTH = "device-health"
    FIRE = "fire"  # an alarm panel's fire zone (SIA DC-09)


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


def _as_list(value: Any) -> Any:
    return (
        [value] if isinstance(value, str | int | float) and not isinstance(value, bool) else value
    )


Scalar = str | int | float | bool
OneOrMany = Annotated[list[Scalar], BeforeValidator(_as_list)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WatchlistRef(Strict):
    list: str = Field(..., description="Watch list id (from a `watchlists:` section)")
    field: str = Field(..., description="Field path whose value must be on the list")

    _field = field_validator("field")(lambda v: check_field_path(v))


class Selector(Strict):
    """Which events a condition looks at. Every given key must hold (logical AND)."""

    kind: Annotated[list[DeviceKind], BeforeValidator(_as_list)] | None = None
    type: Annotated[list[EventType], BeforeValidator(_as_list)] | None = None
    site: Annotated[list[str], BeforeValidator(_as_list)] | None = None
    device_id: Annotated[list[str], BeforeValidator(_as_list)] | None = None
    attributes: dict[str, OneOrMany] = Field(
        default_factory=dict, description="Attribute equality (a list = any of)"
    )
    device: dict[str, Annotated[list[str], BeforeValidator(_as_list)]] = Field(
        default_factory=dict, description="Device-label equality (needs a label lookup)"
    )
    watchlist: WatchlistRef | None = None
    expr: str | None = Field(None, description="simpleeval expression; see docs/rules.md")

    @field_validator("attributes")
    @classmethod
    def _attr_names(cls, v: dict[str, list[Scalar]]) -> dict[str, list[Scalar]]:
        for name in v:
            check_field_path(f"attributes.{name}")
        return v

    @field_validator("expr")
    @classmethod
    def _expr(cls, v: str | None) -> str | None:
        if v is not None:
            check_expression(v)
        return v

    @model_validator(mode="after")
    def _attrs_fit_kinds(self) -> Selector:
        if self.kind:
            known = {n for k in self.kind for n in ATTRIBUTE_MODELS[k].model_fields}
            for name in self.attributes:
                base = name.split(".", 1)[0]
                if base not in known:
                    kinds = ", ".join(k.value for k in self.kind)
                    raise ValueError(f"attribute {name!r} does not exist for kind {kinds}")
        return self


def check_expression(expr: str) -> None:
    """Syntax and name check of an ``expr`` at load time (evaluation is simpleeval's)."""
    try:
        tree = ast.parse(expr.strip(), mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"invalid expression: {exc.msg} at column {exc.offset}") from exc
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in EXPR_FUNCTIONS):
                raise ValueError(
                    f"only these functions may be called: {', '.join(sorted(EXPR_FUNCTIONS))}"
                )
        elif isinstance(node, ast.Name):
            if node.id not in EXPR_NAMES | EXPR_FUNCTIONS:
                raise ValueError(
                    f"unknown name {node.id!r}; known: {', '.join(sorted(EXPR_NAMES - {'True', 'False', 'None'}))}"
                )
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ValueError(f"private attribute {node.attr!r} is not accessible")
        elif isinstance(
            node,
            ast.Lambda
            | ast.ListComp
            | ast.SetComp
            | ast.DictComp
            | ast.GeneratorExp
            | ast.NamedExpr,
        ):
            raise ValueError("lambdas, comprehensions and assignments are not allowed")


GroupBy = Annotated[list[str], Field(description="Field paths forming the group key")]


def _check_paths(v: list[str]) -> list[str]:
    for p in v:
        check_field_path(p)
    return v


class MatchCondition(Strict):
    """One event satisfies the selector."""

    type: Literal["match"]
    when: Selector
    group_by: GroupBy = ["device_id"]

    _g = field_validator("group_by")(_check_paths)


class ThresholdCondition(Strict):
    """At least ``count`` matching events within ``window`` (event time, inclusive) per group."""

    type: Literal["threshold"]
    when: Selector
    count: int = Field(..., ge=2, le=10_000)
    window: Duration = Field(..., gt=0, le=7 * 86400)
    group_by: GroupBy = ["device_id"]

    _g = field_validator("group_by")(_check_paths)


class SequenceCondition(Strict):
    """Events matching each step in order, all within ``within``, on the same group key."""

    type: Literal["sequence"]
    steps: list[Selector] = Field(..., min_length=2, max_length=8)
    within: Duration = Field(..., gt=0, le=86400)
    group_by: GroupBy = ["site", "zone"]

    _g = field_validator("group_by")(_check_paths)


class AbsenceCondition(Strict):
    """No matching event heard for ``for`` per group (gateway receive time). Groups are
    tracked from their first matching event on."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    type: Literal["absence"]
    when: Selector
    for_: Duration = Field(..., alias="for", gt=0, le=30 * 86400)
    group_by: GroupBy = ["device_id"]

    _g = field_validator("group_by")(_check_paths)


class DurationCondition(Strict):
    """A state started by ``start`` and not ended by ``end`` within ``for`` (like Prometheus
    ``for``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    type: Literal["duration"]
    start: Selector
    end: Selector
    for_: Duration = Field(..., alias="for", gt=0, le=7 * 86400)
    group_by: GroupBy = ["device_id"]

    _g = field_validator("group_by")(_check_paths)


Condition = Annotated[
    MatchCondition | ThresholdCondition | SequenceCondition | AbsenceCondition | DurationCondition,
    Field(discriminator="type"),
]


class Titles(Strict):
    zh: str = Field(..., min_length=1, max_length=200)
    en: str = Field(..., min_length=1, max_length=200)

    @field_validator("zh", "en")
    @classmethod
    def _template(cls, v: str) -> str:
        import string

        try:
            parsed = list(string.Formatter().parse(v))
        except ValueError as exc:
            raise ValueError(f"invalid title template: {exc}") from exc
        for _, name, spec, conv in parsed:
            if name is None:
                continue
            if not TEMPLATE_FIELD.match(name) or spec or conv:
                raise ValueError(f"template field {{{name}}} must be a plain name like {{door}}")
        return v


class Window(Strict):
    """Local time window; ``end`` before ``start`` runs past midnight into the next day."""

    days: list[Weekday] = list(Weekday)
    start: time
    end: time

    @model_validator(mode="after")
    def _nonempty(self) -> Window:
        if self.start == self.end:
            raise ValueError("start and end are equal: the window would be empty")
        return self


class Schedule(Strict):
    timezone: str | None = Field(
        None, description="IANA zone; default: engine zone (Asia/Shanghai)"
    )
    windows: list[Window] = Field(..., min_length=1)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise ValueError(f"unknown timezone {v!r}") from exc
        return v


class CancelSpec(Strict):
    """An event that cancels the rule's signal in the same group within a grace period. The
    signal is kept and downgraded, never deleted."""

    when: Selector
    within: Duration = Field(..., gt=0, le=86400)
    severity: Severity = Severity.P3


class Rule(Strict):
    id: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    description: str = ""
    description_zh: str = Field(
        "", description="The description in Chinese, for the console (default: description)"
    )
    severity: Severity
    category: Category
    title: Titles
    labels: dict[str, str] = Field(default_factory=dict, description="Routing labels")
    condition: Condition
    schedule: Schedule | None = None
    cooldown: Duration | None = Field(
        None,
        le=7 * 86400,
        description="One signal per group per period; later hits update it (default 5m)",
    )
    cancel: CancelSpec | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _panic(self) -> Rule:
        if self.category is Category.PANIC:
            if self.schedule is not None:
                raise ValueError("a panic rule cannot have a schedule: panic is always live")
            if self.cooldown:
                raise ValueError("a panic rule cannot have a cooldown: panic is never suppressed")
        return self

    @property
    def is_panic(self) -> bool:
        return self.category is Category.PANIC

    @property
    def effective_cooldown(self) -> float:
        if self.is_panic:
            return 0.0
        return 300.0 if self.cooldown is None else self.cooldown


class SignalMatcher(Strict):
    rules: list[str] = Field(default_factory=list, description="Rule ids (empty: any)")
    labels: dict[str, str] = Field(default_factory=dict, description="Signal label equality")


class InhibitRule(Strict):
    """While a ``source`` signal is active, matching ``target`` signals are not emitted when the
    ``equal`` fields agree (``a`` = same field on both; ``a=b`` = source a equals target b)."""

    source: SignalMatcher
    target: SignalMatcher
    equal: list[str] = Field(default_factory=list)


class WatchlistDef(Strict):
    id: str = Field(..., pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    description: str = ""
    file: Path | None = Field(None, description="Text file, one value per line (# comments)")
    values: list[str] = Field(default_factory=list)
    provider: bool = Field(
        False, description="Also ask the gateway's watch-list provider (database)"
    )
    normalize: Literal["upper", "none"] = "upper"


class Maintenance(Strict):
    """Devices whose signals are inhibited (never panic) until ``until`` (or indefinitely)."""

    devices: list[str] = Field(..., min_length=1)
    until: datetime | None = None
    reason: str = ""

    @field_validator("until")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is not None and v.tzinfo is None:
            raise ValueError("until must carry a timezone, e.g. 2025-01-31T18:00:00+08:00")
        return v


class RuleFile(Strict):
    """One YAML file under ``config/rules/``."""

    rules: list[Rule] = Field(default_factory=list)
    inhibit: list[InhibitRule] = Field(default_factory=list)
    watchlists: list[WatchlistDef] = Field(default_factory=list)
    maintenance: list[Maintenance] = Field(default_factory=list)
