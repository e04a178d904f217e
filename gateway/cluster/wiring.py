"""Cluster mode's ingest on a gateway: per-site MQTT sessions and the rule-state rebuild.

``use_site_sessions(gateway, ownership)`` is called once the ``Gateway`` is built and before
it starts (the ``cluster`` start-up path): the single consumer is left unstarted, every owned
site gets its own session (gateway.cluster.site_sessions) whose acquisition first rebuilds the
site's rule state (gateway.cluster.rebuild), the panics' acknowledgement gates of the sessions
are settled with the receivers', and timer signals of sites not held here are dropped. The
ownership (its ``start`` and ``stop``) stays the caller's: ``stop`` it before the gateway, so
its sites are released — committed, acknowledged, disconnected — while the writer still runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from gateway.cluster.contracts import SiteOwnership
from gateway.cluster.rebuild import MAX_HORIZON_S, HeldSitesSink, SiteRebuild
from gateway.cluster.site_sessions import SiteSessions
from gateway.cluster.site_topics import SiteTopics
from gateway.ingest.mqtt import SESSION_EXPIRY_S
from gateway.receivers.sink import settle_on_all

if TYPE_CHECKING:
    from gateway.runtime import Gateway


def use_site_sessions(
    gateway: Gateway,
    ownership: SiteOwnership,
    *,
    session_expiry_s: int = SESSION_EXPIRY_S,
    protocol: Literal["v5", "v311"] = "v5",
    max_horizon_s: float = MAX_HORIZON_S,
) -> SiteSessions:
    normaliser = gateway.normaliser
    sessions = SiteSessions(
        gateway.config.mqtt,
        normaliser,
        gateway.writer,
        gateway.bus,
        SiteTopics(lambda: normaliser.adapters, lambda: normaliser.registry),
        session_expiry_s=session_expiry_s,
        protocol=protocol,
        rebuild=SiteRebuild(gateway.engine, gateway.rules, max_horizon_s=max_horizon_s),
    )
    sessions.unregistered = gateway.unregistered
    on_evaluated, on_stored = settle_on_all(
        (sessions.gates, gateway.receiver_sink.gate, gateway.push_gate)
    )
    gateway.rules.on_evaluated = on_evaluated
    gateway._settle_stored = on_stored
    gateway.rules.sink = HeldSitesSink(gateway.rules.sink, gateway.rules, sessions.holds)
    sessions.attach(ownership)
    gateway.sessions = sessions
    return sessions
