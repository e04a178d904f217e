"""From an incident to concrete deliveries: routes → receivers → recipients × channels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.grid.directory import GridDirectory, Location
from gateway.routing.model import ChannelRef, RoutingConfig, Target
from gateway.routing.targets import Recipient, resolve, why_nobody
from gateway.routing.tree import RouteInput, RouteMatch, match_routes


@dataclass(frozen=True, slots=True)
class Delivery:
    route: str
    receiver: str
    recipient: Recipient
    channel: str  # "mqtt", "console", "sms", "voice", "webhook:<name>"
    ack_required: bool  # only on the first channel of a recipient (one deadline each)
    group_wait: float
    repeat_interval: float


def _expand(
    route: str,
    receiver: str,
    recipients: list[Recipient],
    channels: list[ChannelRef],
    ack: bool,
    group_wait: float,
    repeat_interval: float,
    seen: set[tuple[str, str]],
    acked: set[str],
) -> list[Delivery]:
    out = []
    for r in recipients:
        for c in channels:
            key = (r.key, str(c))
            if key in seen:
                continue
            seen.add(key)
            needs_ack = ack and r.key not in acked
            if needs_ack:
                acked.add(r.key)
            out.append(Delivery(route, receiver, r, str(c), needs_ack, group_wait, repeat_interval))
    return out


def plan(
    config: RoutingConfig, grid: GridDirectory, x: RouteInput, loc: Location
) -> list[Delivery]:
    """Every (recipient, channel) once, in route order; a recipient named by several routes
    keeps the first route's settings."""
    seen: set[tuple[str, str]] = set()
    acked: set[str] = set()
    out: list[Delivery] = []
    for m in match_routes(config.route, x):
        for name in m.receivers:
            receiver = config.receiver(name)
            recipients = [p for t in receiver.targets for p in resolve(t, loc, grid)]
            out += _expand(
                m.path,
                name,
                recipients,
                receiver.channels,
                receiver.ack,
                m.group_wait,
                m.repeat_interval,
                seen,
                acked,
            )
    return out


def escalation_plan(
    config: RoutingConfig, grid: GridDirectory, target: Target, loc: Location
) -> list[Delivery]:
    """Who is told when ``target`` does not acknowledge: the ladder's next rung; a rung that
    resolves to nobody is skipped for the one above it."""
    ladder = config.escalation.ladder
    rungs = list(ladder.get(target, []))
    visited = {target}
    while rungs:
        next_rungs: list[Target] = []
        seen: set[tuple[str, str]] = set()
        acked: set[str] = set()
        out: list[Delivery] = []
        for rung in rungs:
            if rung in visited:
                continue
            visited.add(rung)
            recipients = resolve(rung, loc, grid)
            if recipients:
                out += _expand(
                    "escalation",
                    f"escalation:{rung.value}",
                    recipients,
                    config.escalation.channels,
                    True,
                    0.0,
                    0.0,
                    seen,
                    acked,
                )
            else:
                next_rungs += ladder.get(rung, [])
        if out:
            return out
        rungs = next_rungs
    return []


def explain(
    config: RoutingConfig, grid: GridDirectory, x: RouteInput, loc: Location
) -> dict[str, Any]:
    """What the routing tree does with ``x`` at ``loc``, as JSON-ready data: the routes that
    match, their receivers, and each delivery (``lianfang routes test``, the console's
    routing tester)."""
    matched = match_routes(config.route, x)
    return {
        "location": {
            "cell": loc.cell,
            "community": loc.community,
            "beats": list(loc.beats),
            "group": loc.group,
            "address": loc.address,
        },
        "routes": [m.path for m in matched],
        "route_timing": [
            {
                "path": m.path,
                "receivers": list(m.receivers),
                "group_wait_s": m.group_wait,
                "repeat_interval_s": m.repeat_interval,
            }
            for m in matched
        ],
        "receivers": sorted({r for m in matched for r in m.receivers}),
        "deliveries": [
            {
                "receiver": d.receiver,
                "recipient": d.recipient.key,
                "name": d.recipient.name,
                "channel": d.channel,
                "ack": d.ack_required,
                "group_wait_s": d.group_wait,
            }
            for d in plan(config, grid, x, loc)
        ],
        "unresolved": _unresolved(config, grid, matched, loc),
    }


def _unresolved(
    config: RoutingConfig, grid: GridDirectory, matched: list[RouteMatch], loc: Location
) -> list[dict[str, Any]]:
    """The matched receivers' targets that resolve to nobody here, each with the reason."""
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, Target]] = set()
    for m in matched:
        for name in m.receivers:
            for target in config.receiver(name).targets:
                if (name, target) in seen or resolve(target, loc, grid):
                    continue
                seen.add((name, target))
                why = why_nobody(target, loc, grid)
                out.append(
                    {
                        "receiver": name,
                        "target": target.value,
                        "code": why.code,
                        "reason": why.reason,
                        "values": why.values,
                    }
                )
    return out
