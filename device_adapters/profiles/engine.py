"""Apply a profile to a message: the data-driven adapter.

Each mapping is compiled once into a :class:`_Plan` of plain callables, so the per-message
work is dictionary look-ups and one pydantic validation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from jmespath.exceptions import JMESPathError
from pydantic import ValidationError

from device_adapters.base import DeviceLookup, MappingError, Message, NoMatch
from device_adapters.profiles.expressions import Expression, compile_expression
from device_adapters.profiles.schema import (
    PERSONAL_ATTRIBUTES,
    FieldSpec,
    Mapping,
    Profile,
    TimeSpec,
)
from device_adapters.profiles.topics import TopicPattern
from gateway.events import ATTRIBUTE_MODELS, RAW_PAYLOAD_LIMIT, Event, EventType
from gateway.privacy import mask_tail, pseudonymise

MAX_FUTURE_SKEW = timedelta(days=1)
_validate_event = Event.__pydantic_validator__.validate_python


class UnknownDevice(NoMatch):
    """The device is not registered and the mapping cannot tell its site or kind.

    The message is still read as far as it can be without the registry, so that a panic
    from an unregistered button is raised (``gateway.ingest.unregistered``): ``event_types``
    holds the event types its mappings give (``panic`` …) and ``site`` the site a mapping
    names (from the topic), if any.
    """

    def __init__(
        self,
        device_id: str,
        missing: str,
        *,
        site: str | None = None,
        event_types: set[str] | None = None,
    ) -> None:
        super().__init__(
            f"device {device_id!r} is not registered and the profile gives no {missing}"
        )
        self.device_id = device_id
        self.site = site
        self.event_types: set[str] = event_types if event_types is not None else set()


_MISSING = object()


def make_evaluator(spec: FieldSpec) -> Expression:
    """One field as a callable over the context: expression or fixed value, then map/default/scale."""
    if spec.expr is None:
        fixed = spec.value
        return lambda ctx: fixed
    get = compile_expression(spec.expr)
    table, default, scale = spec.map, spec.default, spec.scale
    if table is None and default is None and scale is None:
        return get

    def evaluate(ctx: Any) -> Any:
        result = get(ctx)
        if table is not None and result is not None:
            key = str(result).lower() if isinstance(result, bool) else str(result)
            result = table.get(key, _MISSING)
            if result is _MISSING:
                result = None
        if result is None:
            return default
        if scale is not None and isinstance(result, int | float) and not isinstance(result, bool):
            result = result * scale
        return result

    return evaluate


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def parse_time(value: Any, spec: TimeSpec, default_tz: str) -> datetime:
    """Device timestamps in the common shapes; naive times are in the profile's/gateway's zone."""
    fmt = spec.format
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float) or (
        fmt in ("epoch_s", "epoch_ms") and isinstance(value, str)
    ):
        number = float(value)
        if fmt == "epoch_ms" or (fmt == "auto" and number > 1e11):
            number /= 1000.0
        return datetime.fromtimestamp(number, UTC)
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    if fmt in ("auto", "iso8601"):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    else:
        parsed = datetime.strptime(value, fmt)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_zone(spec.tz or default_tz))
    return parsed.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class _Attribute:
    name: str
    get: Expression
    personal: bool
    extra: bool


@dataclass(frozen=True, slots=True)
class _Plan:
    mapping: Mapping
    topics: list[TopicPattern]
    when: Expression | None
    device_id: Expression
    site: Expression | None
    kind: Expression | None
    type: Expression
    type_code: Expression | None
    event_id: Expression | None
    occurred_at: Expression | None
    attributes: list[_Attribute]
    attributes_from: Expression | None
    rename: dict[str, str]

    @classmethod
    def compile(cls, m: Mapping) -> _Plan:
        return cls(
            mapping=m,
            topics=m.topics,
            when=compile_expression(m.when) if m.when else None,
            device_id=make_evaluator(m.device_id),
            site=make_evaluator(m.site) if m.site else None,
            kind=make_evaluator(m.kind) if m.kind else None,
            type=make_evaluator(m.type),
            type_code=compile_expression(m.type.expr) if m.type.expr else None,
            event_id=make_evaluator(m.event_id) if m.event_id else None,
            occurred_at=compile_expression(m.occurred_at.expr) if m.occurred_at else None,
            attributes_from=compile_expression(m.attributes_from.expr)
            if m.attributes_from
            else None,
            rename=dict(m.attributes_from.rename) if m.attributes_from else {},
            attributes=[
                _Attribute(
                    name,
                    make_evaluator(spec),
                    name in PERSONAL_ATTRIBUTES,
                    name.startswith("extra."),
                )
                for name, spec in m.attributes.items()
            ],
        )

    def captures(self, topic: str) -> dict[str, str] | None:
        for t in self.topics:
            found = t.match(topic)
            if found is not None:
                return found
        return None


TOPIC_CACHE_SIZE = 50_000


class ProfileAdapter:
    """Adapter backed by one :class:`Profile`."""

    def __init__(self, profile: Profile, default_tz: str = "Asia/Shanghai") -> None:
        self.profile = profile
        self.name = profile.profile
        self.default_tz = default_tz
        self._plans = [_Plan.compile(m) for m in profile.mappings]
        # topic → the plans that take it, with their captures: topics are per device, so a
        # few thousand entries serve every message instead of a regex per plan per message.
        self._by_topic: dict[str, list[tuple[_Plan, dict[str, str]]]] = {}
        # The literal first levels of the profile's topics ("lianfang", "zigbee2mqtt"), or
        # None when one starts with a placeholder: a topic under another first level is
        # declined without a regex or a cache entry (a storm of new topics is cheap).
        firsts = {t.pattern.split("/", 1)[0] for plan in self._plans for t in plan.topics}
        self.first_levels: frozenset[str] | None = (
            None if any("{" in f or f in ("+", "#") for f in firsts) else frozenset(firsts)
        )

    def _matching(self, topic: str) -> list[tuple[_Plan, dict[str, str]]]:
        cached = self._by_topic.get(topic)
        if cached is not None:
            return cached
        found = [(p, c) for p in self._plans if (c := p.captures(topic)) is not None]
        if len(self._by_topic) >= TOPIC_CACHE_SIZE:
            self._by_topic.clear()
        self._by_topic[topic] = found
        return found

    def topic_patterns(self) -> list[TopicPattern]:
        """The mappings' topic patterns, with their named levels (``{site}``, ``{device}``):
        what a site's own MQTT session subscribes to is cut from them
        (gateway.cluster.site_topics)."""
        out: list[TopicPattern] = []
        for plan in self._plans:
            out.extend(t for t in plan.topics if t not in out)
        return out

    def subscriptions(self) -> list[str]:
        subs: list[str] = []
        for plan in self._plans:
            for t in plan.topics:
                if t.subscription not in subs:
                    subs.append(t.subscription)
        return subs

    def accepts(self, topic: str) -> bool:
        if self.first_levels is not None and topic.partition("/")[0] not in self.first_levels:
            return False
        return bool(self._matching(topic))

    def payload_format(self, topic: str) -> str:
        matching = self._matching(topic)
        return matching[0][0].mapping.format if matching else "json"

    def normalise(self, message: Message, lookup: DeviceLookup) -> list[Event]:
        events: list[Event] = []
        reasons: list[str] = []
        unknown: UnknownDevice | None = None
        for plan, captures in self._matching(message.topic):
            mapping = plan.mapping
            if mapping.format == "json" and isinstance(message.payload, str):
                reasons.append(f"{mapping.id}: payload is text, mapping expects JSON")
                continue
            ctx = {"payload": message.payload, "topic": captures}
            try:
                applies = plan.when is None or _truthy(plan.when(ctx))
            except JMESPathError as exc:  # e.g. a function given the wrong type by this payload
                reasons.append(f"{mapping.id}: `when: {mapping.when}` failed: {exc}")
                continue
            if not applies:
                reasons.append(f"{mapping.id}: `when: {mapping.when}` is false")
                continue
            try:
                events.append(self._build(plan, ctx, message, lookup))
            except UnknownDevice as exc:
                # The message is an unknown device's whatever later mappings say; they are
                # still read (as far as `continue` goes) for the types they would give.
                if unknown is None:
                    unknown = exc
                else:
                    unknown.event_types |= exc.event_types
            except NoMatch as exc:
                reasons.append(f"{mapping.id}: {exc.reason}")
                continue
            except (JMESPathError, MappingError) as exc:
                if unknown is None:
                    if isinstance(exc, MappingError):
                        raise
                    raise MappingError(
                        f"{mapping.id}: an expression failed on this payload: {exc}"
                    ) from exc
            if not mapping.continue_:
                break
        if unknown is not None:
            unknown.event_types.update(e.type.value for e in events)
            raise unknown
        if not events:
            raise NoMatch(
                "; ".join(reasons) or f"no mapping of {self.name} takes topic {message.topic}"
            )
        return events

    def _build(
        self, plan: _Plan, ctx: dict[str, Any], message: Message, lookup: DeviceLookup
    ) -> Event:
        mapping = plan.mapping
        device_id = plan.device_id(ctx)
        if device_id is None or device_id == "":
            raise NoMatch(
                f"device_id `{mapping.device_id.expr or mapping.device_id.value}` gave nothing"
            )
        device_id = str(device_id)
        site = plan.site(ctx) if plan.site else None
        kind = plan.kind(ctx) if plan.kind else None
        if site is None or kind is None:
            info = lookup(device_id)
            if info is None:
                raise UnknownDevice(
                    device_id,
                    "site" if site is None else "kind",
                    site=None if site is None else str(site),
                    event_types=_type_without_registry(plan, ctx),
                )
            site = info.site if site is None else site
            kind = info.kind if kind is None else kind
        event_type = plan.type(ctx)
        if event_type is None:
            code = plan.type_code(ctx) if plan.type_code is not None else None
            raise NoMatch(f"type code {code!r} is not in the type map")

        attrs = _Attributes(message.raw)
        if plan.attributes_from is not None:
            source = plan.attributes_from(ctx)
            if isinstance(source, dict):
                rename = plan.rename
                for key, value in source.items():
                    if value is not None:
                        # Unknown keys are kept as extra; a field of another kind stays a
                        # field, so the event is refused rather than silently reshaped.
                        name = rename.get(key) or str(key)
                        known = name in _ALL_FIELDS or name.startswith("extra.")
                        attrs.put(name if known else f"extra.{name}", value)
        for attr in plan.attributes:
            value = attr.get(ctx)
            if value is not None:
                attrs.put(attr.name, value)
        attributes, raw_text = attrs.attributes, attrs.raw_text
        if attrs.extra:
            attributes["extra"] = attrs.extra
        # The discriminator, given here: Event's own default costs two dict copies per event.
        attributes["kind"] = str(kind)

        occurred_at = message.received_at
        if plan.occurred_at is not None and mapping.occurred_at is not None:
            value = plan.occurred_at(ctx)
            if value is not None and value != "":
                try:
                    occurred_at = parse_time(value, mapping.occurred_at, self.default_tz)
                except (ValueError, OverflowError, OSError) as exc:
                    raise MappingError(
                        f"{mapping.id}: occurred_at: cannot read {value!r}: {exc}"
                    ) from exc
            # A device clock far in the future would poison time windows downstream: the
            # message is declined. Not a panic, which is never dropped: it keeps the time it
            # was received, and the device's own time as extra.device_time.
            if occurred_at > message.received_at + MAX_FUTURE_SKEW:
                if event_type != EventType.PANIC:
                    raise MappingError(
                        f"{mapping.id}: occurred_at {occurred_at.isoformat()} is more than a "
                        "day ahead"
                    )
                attributes.setdefault("extra", {})["device_time"] = occurred_at.isoformat()
                occurred_at = message.received_at

        own_id = plan.event_id(ctx) if plan.event_id else None
        if own_id is not None and own_id != "":
            event_id = f"{self.name}:{device_id}:{own_id}"
        else:
            event_id = (
                f"{self.name}:{device_id}:h{_digest(self.name, mapping.id, device_id, message)}"
            )
        try:
            # model_validate without its Python wrapper (half a µs of every message)
            event: Event = _validate_event(
                {
                    "event_id": event_id[:128],
                    "occurred_at": occurred_at,
                    "received_at": message.received_at,
                    "site": str(site),
                    "device_id": device_id,
                    "kind": kind,
                    "type": event_type,
                    "attributes": attributes,
                    "source": self.name,
                    "raw": (raw_text if raw_text is not None else _raw_text(message.raw))[
                        :RAW_PAYLOAD_LIMIT
                    ],
                }
            )
            return event
        except ValidationError as exc:
            detail = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise MappingError(f"{mapping.id}: {detail}") from exc


_ALL_FIELDS = frozenset().union(*(m.model_fields for m in ATTRIBUTE_MODELS.values())) - {
    "kind",
    "extra",
}


class _Attributes:
    """Collects one event's attributes; personal identifiers become references and are
    masked in the stored raw payload."""

    __slots__ = ("_raw", "attributes", "extra", "masked_raw")

    def __init__(self, raw: bytes) -> None:
        self._raw = raw
        self.attributes: dict[str, Any] = {}
        self.extra: dict[str, Any] = {}
        self.masked_raw: str | None = None

    @property
    def raw_text(self) -> str:
        return self.masked_raw if self.masked_raw is not None else _raw_text(self._raw)

    def put(self, name: str, value: Any) -> None:
        if name in PERSONAL_ATTRIBUTES:
            text = str(value).strip()
            if not text:  # "" is no identifier: a hash of it would link unrelated events
                return
            value = pseudonymise(text, "card" if name == "card_ref" else "person")
            if name == "card_ref":
                self.attributes["card_masked"] = mask_tail(text)
            if len(text) >= 4:  # never keep the identifier in the stored raw payload
                self.masked_raw = self.raw_text.replace(text, mask_tail(text))
        if name.startswith("extra."):
            self.extra[name[6:]] = (
                value if isinstance(value, str | int | float | bool) else str(value)
            )
        else:
            self.attributes[name] = value


def _raw_text(raw: bytes) -> str:
    return raw[: RAW_PAYLOAD_LIMIT * 4].decode("utf-8", "replace")


def _digest(*parts: Any) -> str:
    """Deterministic id for devices without their own: same message bytes → same id."""
    *names, message = parts
    digest = hashlib.blake2b(digest_size=16)
    for part in (*names, message.topic):
        digest.update(str(part).encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    digest.update(message.raw)
    return digest.hexdigest()


def _type_without_registry(plan: _Plan, ctx: dict[str, Any]) -> set[str]:
    """The event type a mapping gives, read without the registry (empty if none)."""
    try:
        value = plan.type(ctx)
    except JMESPathError:
        return set()
    return {str(value)} if value is not None else set()


def _truthy(value: Any) -> bool:
    # JMESPath truthiness: null, false, "" and empty containers are false; 0 is true.
    if value is None or value is False:
        return False
    return not (isinstance(value, str | list | dict) and len(value) == 0)


Lookup = Callable[[str], Any]
