"""Routing: which receivers hear about an incident (``config/routing.yaml``), resolved
through the grid at send time, and who is next when nobody acknowledges."""

from gateway.routing.model import RoutingConfig, Target, load_routing
from gateway.routing.planner import Delivery, escalation_plan, explain, plan
from gateway.routing.tree import RouteInput, RouteMatch, match_routes

__all__ = [
    "Delivery",
    "RouteInput",
    "RouteMatch",
    "RoutingConfig",
    "Target",
    "escalation_plan",
    "explain",
    "load_routing",
    "match_routes",
    "plan",
]
