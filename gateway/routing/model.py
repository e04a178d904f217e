"""``config/routing.yaml``: receivers, webhooks, the routing tree and the escalation ladder.

Alertmanager's semantics with typed keys: matchers name known fields (category, severity,
source, cell, community, site, rule_id) and label keys the rules actually use, so a typo is
a validation error naming the key path, never a silent fall-through to the default.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from gateway.config.errors import ConfigErrors
from gateway.config.loader import load_yaml
from gateway.incidents.categories import IncidentCategory, Severity, Source
from rules.durations import Duration

# Label keys a route may match on besides those found in the rule files' ``labels:``.
DEVICE_LABEL_KEYS = frozenset(
    f"device.{k}" for k in ("kind", "name", "place", "zone", "household", "camera")
) | {"device.registered"}  # "false" on panics of unregistered devices (gateway.ingest.unregistered)
# "message.readable": "false" on panics read from messages no profile could (panic_sniff)
DEFAULT_LABEL_KEYS = (
    frozenset({"team", "notify", "escalated", "message.readable"}) | DEVICE_LABEL_KEYS
)
NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class Target(StrEnum):
    """A role resolved at send time through the grid (see ``gateway.routing.targets``)."""

    POLICE_DESK = "police_desk"  # the duty desk of the cell's police beat
    COMMUNITY_POLICE = "community_police"  # the beat's community police officers
    GRID_WORKER = "grid_worker"  # the cell's grid workers (micro-grid first)
    STATION_GRID_WORKER = "station_grid_worker"
    GRID_HEAD = "grid_head"  # the cell's grid head
    GRID_INSTRUCTOR = "grid_instructor"
    GRID_CONVENER = "grid_convener"  # the community's convener
    GRID_SUPERVISING_LEADER = "grid_supervising_leader"
    LIAISON_INSTRUCTOR = "liaison_instructor"
    COMMUNITY = "community"  # the community office console
    PROPERTY_MANAGER = "property_manager"  # the compound's property manager
    NEIGHBOURS = "neighbours"  # the household's 十户联防 neighbour group
    COMMAND_CENTRE = "command_centre"  # the street's command centre console


class Channel(StrEnum):
    MQTT = "mqtt"
    CONSOLE = "console"
    SMS = "sms"
    VOICE = "voice"
    WEBHOOK = "webhook"


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChannelRef(Strict):
    channel: Channel
    webhook: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if isinstance(data, str):
            kind, _, name = data.partition(":")
            return {"channel": kind, "webhook": name or None}
        return data

    @model_validator(mode="after")
    def _check(self) -> ChannelRef:
        if self.channel is Channel.WEBHOOK and not self.webhook:
            raise ValueError("a webhook channel names its webhook: webhook:<name>")
        if self.channel is not Channel.WEBHOOK and self.webhook:
            raise ValueError(f"channel {self.channel.value} takes no name")
        return self

    def __str__(self) -> str:
        return f"webhook:{self.webhook}" if self.webhook else self.channel.value


class Receiver(Strict):
    """A named set of targets and the channels they are reached on."""

    name: str = Field(..., pattern=NAME)
    description: str = ""
    targets: Annotated[list[Target], BeforeValidator(_as_list)] = Field(..., min_length=1)
    channels: list[ChannelRef] = Field(default_factory=lambda: [ChannelRef(channel=Channel.MQTT)])
    ack: bool = Field(True, description="Each notified target must acknowledge in time")


class Webhook(Strict):
    name: str = Field(..., pattern=NAME)
    url: str | None = Field(None, pattern=r"^https?://", description="Endpoint URL")
    url_env: str | None = Field(None, description="Environment variable holding the URL")
    secret_env: str | None = Field(
        None, description="Environment variable holding the HMAC-SHA256 signing secret"
    )
    timeout_s: float = Field(5.0, gt=0, le=60)
    max_attempts: int = Field(6, ge=1, le=50, description="Then the notification is dead")
    backoff_s: float = Field(1.0, gt=0, le=600, description="First retry delay (doubles)")
    backoff_max_s: float = Field(300.0, gt=0, le=86400)

    @model_validator(mode="after")
    def _one_url(self) -> Webhook:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url, url_env")
        return self


def _label_keys(info: ValidationInfo) -> frozenset[str]:
    ctx = info.context or {}
    keys = ctx.get("label_keys")
    return frozenset(keys) | DEFAULT_LABEL_KEYS if keys else DEFAULT_LABEL_KEYS


class Matchers(Strict):
    """Every given field must match (AND); a list means any of its values (OR)."""

    category: Annotated[list[IncidentCategory], BeforeValidator(_as_list)] | None = None
    severity: Annotated[list[Severity], BeforeValidator(_as_list)] | None = None
    source: Annotated[list[Source], BeforeValidator(_as_list)] | None = None
    cell: Annotated[list[str], BeforeValidator(_as_list)] | None = None
    community: Annotated[list[str], BeforeValidator(_as_list)] | None = None
    site: Annotated[list[str], BeforeValidator(_as_list)] | None = None
    rule_id: Annotated[list[str], BeforeValidator(_as_list)] | None = None
    labels: dict[str, Annotated[list[str], BeforeValidator(_as_list)]] = Field(
        default_factory=dict, description="Signal labels (typed keys)"
    )

    @field_validator("labels")
    @classmethod
    def _known_labels(
        cls, value: dict[str, list[str]], info: ValidationInfo
    ) -> dict[str, list[str]]:
        known = _label_keys(info)
        for key in value:
            if key not in known:
                raise ValueError(f"unknown label key {key!r}; known: {', '.join(sorted(known))}")
        return value

    @field_validator("cell", "community", "site", "rule_id")
    @classmethod
    def _known_ids(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        known = (info.context or {}).get(f"known_{info.field_name}")
        if value is not None and known is not None:
            for v in value:
                if v not in known:
                    raise ValueError(f"unknown {info.field_name} {v!r}")
        return value


class Route(Strict):
    name: str = ""
    matchers: Matchers = Matchers()
    receivers: list[str] | None = Field(None, description="Receiver names (inherited if unset)")
    continue_: bool = Field(False, alias="continue", description="Keep matching siblings")
    group_wait: Duration | None = Field(None, description="Wait before the first notification")
    repeat_interval: Duration | None = Field(
        None, description="Re-notify for new signals on an open incident at most this often"
    )
    routes: list[Route] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RootRoute(Route):
    receivers: list[str] = Field(..., min_length=1)
    group_wait: Duration = 30.0
    repeat_interval: Duration = 4 * 3600.0

    @model_validator(mode="after")
    def _root(self) -> RootRoute:
        if self.continue_:
            raise ValueError("the root route cannot continue")
        if self.matchers != Matchers():
            raise ValueError("the root route matches everything: no matchers")
        return self


class Escalation(Strict):
    ack_deadline: dict[Severity, Duration | None] = Field(
        default_factory=lambda: {
            Severity.P1: 60.0,
            Severity.P2: 300.0,
            Severity.P3: 1800.0,
            Severity.P4: None,
        },
        description="How long a notified receiver has to acknowledge; null: no deadline",
    )
    ladder: dict[Target, list[Target]] = Field(
        default_factory=dict, description="Who is told when a target does not acknowledge"
    )
    channels: list[ChannelRef] = Field(
        default_factory=lambda: [ChannelRef(channel=Channel.MQTT)],
        description="Channels of escalation notifications",
    )


class RoutingConfig(Strict):
    receivers: list[Receiver] = Field(..., min_length=1)
    webhooks: list[Webhook] = Field(default_factory=list)
    route: RootRoute
    escalation: Escalation = Escalation()

    @model_validator(mode="after")
    def _references(self) -> RoutingConfig:
        names = [r.name for r in self.receivers]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"receiver names appear twice: {', '.join(sorted(dupes))}")
        hooks = {w.name for w in self.webhooks}
        for r in self.receivers:
            for c in r.channels:
                if c.webhook and c.webhook not in hooks:
                    raise ValueError(f"receiver {r.name!r}: unknown webhook {c.webhook!r}")
        for c in self.escalation.channels:
            if c.webhook and c.webhook not in hooks:
                raise ValueError(f"escalation: unknown webhook {c.webhook!r}")
        known = set(names)

        def walk(route: Route, path: str) -> None:
            for name in route.receivers or []:
                if name not in known:
                    raise ValueError(f"{path}.receivers: unknown receiver {name!r}")
            for i, child in enumerate(route.routes):
                walk(child, f"{path}.routes[{i}]")

        walk(self.route, "route")
        return self

    def receiver(self, name: str) -> Receiver:
        return next(r for r in self.receivers if r.name == name)


def load_routing(
    path: Path,
    *,
    label_keys: set[str] | None = None,
    cells: set[str] | None = None,
    communities: set[str] | None = None,
    sites: set[str] | None = None,
    rule_ids: set[str] | None = None,
) -> RoutingConfig:
    """Load and validate ``routing.yaml``. Known label keys, cells, communities, sites and rule
    ids (when given) make matchers on unknown values validation errors."""
    data = load_yaml(path) or {}
    context = {
        "file": str(path),
        "label_keys": label_keys,
        "known_cell": cells,
        "known_community": communities,
        "known_site": sites,
        "known_rule_id": rule_ids,
    }
    try:
        return RoutingConfig.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigErrors.from_validation(exc, path) from exc
