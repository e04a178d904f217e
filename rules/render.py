"""Turn a hit into a ``Signal``: titles from templates, labels, events and location."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from enum import Enum
from typing import Literal

from rules.conditions import Hit, Ref
from rules.model import Rule, Severity
from rules.signal import Signal, SignalEvent


class _Vars(dict[str, object]):
    def __missing__(self, key: str) -> str:
        return "?"


def template_vars(rule: Rule, hit: Hit, device_labels: Mapping[str, str], count: int) -> _Vars:
    """Names usable in title templates: location, count, device labels, event attributes."""
    out = _Vars()
    for part in hit.group.split(","):  # group-key fields (``door=east``) first
        name, eq, value = part.partition("=")
        if eq and value != "-":
            out[name] = value
    for k, v in device_labels.items():
        out[k] = v
    if hit.ctx is not None:
        attrs = hit.ctx.event.attributes
        for name in type(attrs).model_fields:
            value = getattr(attrs, name)
            if value is not None and name not in ("kind", "extra"):
                out[name] = value.value if isinstance(value, Enum) else value
        for ek, ev in attrs.extra.items():
            out.setdefault(ek, ev)
        out["type"] = hit.ctx.event.type.value
    out.update(hit.extra)
    out.update(
        {
            "site": hit.where.site or "?",
            "zone": hit.where.zone or "?",
            "device_id": hit.where.device_id or "?",
            "count": count,
            "rule_id": rule.id,
        }
    )
    return out


def signal_labels(rule: Rule, device_labels: Mapping[str, str]) -> dict[str, str]:
    labels = dict(rule.labels)
    for k, v in device_labels.items():
        labels[f"device.{k}"] = str(v)
    return labels


def _ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def build_signal(
    rule: Rule,
    hit: Hit,
    *,
    signal_id: str,
    kind: Literal["new", "update"],
    state: Literal["firing", "resolved", "cancelled"],
    severity: Severity,
    count: int,
    labels: dict[str, str],
    device_labels: Mapping[str, str],
    refs: list[Ref],
    max_events: int,
    explanation: str | None = None,
) -> Signal:
    tv = template_vars(rule, hit, device_labels, count)
    shown = refs[-max_events:]
    # Every value is already typed and checked: construct without re-validating (hot path).
    return Signal.model_construct(
        signal_id=signal_id,
        kind=kind,
        state=state,
        rule_id=rule.id,
        severity=severity,
        category=rule.category,
        title_zh=rule.title.zh.format_map(tv),
        title_en=rule.title.en.format_map(tv),
        group_key=hit.group,
        events=[
            SignalEvent.model_construct(
                event_id=r.event_id, type=r.type, device_id=r.device_id, occurred_at=_ts(r.t)
            )
            for r in shown
        ],
        event_count=count,
        site=hit.where.site,
        zone=hit.where.zone,
        device_id=hit.where.device_id,
        labels=labels,
        explanation=explanation if explanation is not None else hit.explanation,
        fired_at=_ts(hit.at),
    )
