"""Matching an incident against the routing tree (Alertmanager semantics).

A route matches when all its matchers hold. Its children are tried in order; the first that
matches wins unless it has ``continue: true``, in which case later siblings are tried too.
When no child matches, the route itself is the match. Children inherit ``receivers``,
``group_wait`` and ``repeat_interval`` from their parent when they do not set them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.routing.model import Matchers, RootRoute, Route


@dataclass(frozen=True, slots=True)
class RouteInput:
    """What routing looks at."""

    category: str
    severity: str
    source: str = "rule"
    cell: str | None = None
    community: str | None = None
    site: str | None = None
    rule_id: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RouteMatch:
    path: str  # e.g. "route.routes[0]" or the route's name
    receivers: tuple[str, ...]
    group_wait: float
    repeat_interval: float


def _in(value: str | None, allowed: list[str] | None) -> bool:
    return allowed is None or (value is not None and value in allowed)


def matches(m: Matchers, x: RouteInput) -> bool:
    return (
        (m.category is None or x.category in m.category)
        and (m.severity is None or x.severity in m.severity)
        and (m.source is None or x.source in m.source)
        and _in(x.cell, m.cell)
        and _in(x.community, m.community)
        and _in(x.site, m.site)
        and _in(x.rule_id, m.rule_id)
        and all(x.labels.get(k) in values for k, values in m.labels.items())
    )


def _walk(route: Route, parent: RouteMatch, x: RouteInput, path: str) -> list[RouteMatch]:
    if not matches(route.matchers, x):
        return []
    here = RouteMatch(
        route.name or path,
        tuple(route.receivers) if route.receivers is not None else parent.receivers,
        route.group_wait if route.group_wait is not None else parent.group_wait,
        route.repeat_interval if route.repeat_interval is not None else parent.repeat_interval,
    )
    found: list[RouteMatch] = []
    for i, child in enumerate(route.routes):
        got = _walk(child, here, x, f"{path}.routes[{i}]")
        if got:
            found.extend(got)
            if not child.continue_:
                break
    return found or [here]


def match_routes(root: RootRoute, x: RouteInput) -> list[RouteMatch]:
    """Every matching leaf route, in tree order (at least the root)."""
    base = RouteMatch("route", tuple(root.receivers), root.group_wait, root.repeat_interval)
    return _walk(root, base, x, "route")
