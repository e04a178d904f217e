"""One MQTT persistent session per owned site (cluster mode; docs/cluster.md).

Each site is consumed through a session of its own: a stable client id per site, the same on
every worker (``site_topics.session_client_id``), clean start off and a long session expiry,
subscribed only to that site's topics (``site_topics.SiteTopics``). While no worker owns a
site, the broker keeps its QoS 1 messages; the next owner's connection resumes them.

- **Acquired** (``acquire``, an ``on_acquired`` listener of ``SiteOwnership``): the site's rule
  state is rebuilt first (``rebuild``, gateway.cluster.rebuild), then its session connects.
- **Lost** (``release``, ``on_lost``): the session stops taking messages, the writer commits
  what it already holds (those are acknowledged — the fence refuses them if the lease is gone,
  and then nothing is), and the session disconnects. What is not acknowledged stays with the
  broker for the next owner; redeliveries keep their event ids and are stored once.

Every session is an ``MqttConsumer`` sharing the worker's normaliser, bus and batch writer.
The writer's acknowledgements are routed to the session by the connection generation in each
token (unique across consumers); each session holds its panics' acknowledgements in a gate
of its own, and ``gates`` settles them all (the rules and the incident service call it).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Literal

from gateway.bus import EventBus
from gateway.cluster.contracts import SiteOwnership
from gateway.cluster.site_topics import SITELESS, SiteTopics, session_client_id
from gateway.config.settings import MqttConfig
from gateway.ingest.ack_gate import AckGate
from gateway.ingest.mqtt import SESSION_EXPIRY_S, BrokerStatus, MqttConsumer
from gateway.ingest.pipeline import Normaliser
from gateway.ingest.unregistered import UnregisteredPanics
from gateway.storage.writer import BatchWriter

log = logging.getLogger(__name__)

Rebuild = Callable[[str], Awaitable[object]]
SUBSCRIBE_WAIT_S = 10.0  # how long an acquisition waits for the broker's SUBACK
RELEASE_DRAIN_S = 2.0  # how long a lost site's held events may take to commit


class SiteGates:
    """The panic gates of every session, settled together (``Settling``)."""

    def __init__(self) -> None:
        self._gates: tuple[AckGate, ...] = ()

    def add(self, gate: AckGate) -> None:
        self._gates = (*self._gates, gate)

    def remove(self, gate: AckGate) -> None:
        self._gates = tuple(g for g in self._gates if g is not gate)

    def settled(self, event_ids: Iterable[str]) -> None:
        ids = list(event_ids)
        for gate in self._gates:
            gate.settled(ids)

    def __len__(self) -> int:
        return sum(len(g) for g in self._gates)


class SiteSessions:
    """The sessions of the sites this worker owns; ``attach`` it to the ownership."""

    def __init__(
        self,
        config: MqttConfig,
        normaliser: Normaliser,
        writer: BatchWriter,
        bus: EventBus,
        topics: SiteTopics,
        *,
        client_prefix: str | None = None,
        session_expiry_s: int = SESSION_EXPIRY_S,
        protocol: Literal["v5", "v311"] = "v5",
        rebuild: Rebuild | None = None,
        subscribe_wait_s: float = SUBSCRIBE_WAIT_S,
        release_drain_s: float = RELEASE_DRAIN_S,
    ) -> None:
        self.config = config
        self.normaliser = normaliser
        self.writer = writer
        self.bus = bus
        self.topics = topics
        self.client_prefix = client_prefix or config.client_id
        self.session_expiry_s = session_expiry_s
        self.protocol = protocol
        self.rebuild = rebuild
        self.subscribe_wait_s = subscribe_wait_s
        self.release_drain_s = release_drain_s
        self.gates = SiteGates()
        # Set by the gateway: raises the incidents of unregistered devices' panics.
        self.unregistered: UnregisteredPanics | None = None
        # Replaced, never changed in place: the writer's thread reads it (_acknowledge).
        self._sessions: dict[str, MqttConsumer] = {}
        writer.acknowledge = self._acknowledge

    def attach(self, ownership: SiteOwnership) -> None:
        ownership.on_acquired(self.acquire)
        ownership.on_lost(self.release)

    # -- what the gateway asks -----------------------------------------------------------
    def sites(self) -> list[str]:
        """The sites with a session here (connected or connecting)."""
        return sorted(self._sessions)

    def holds(self, site: str) -> bool:
        return site in self._sessions

    def session(self, site: str) -> MqttConsumer | None:
        return self._sessions.get(site)

    def status(self) -> dict[str, BrokerStatus]:
        return {site: c.status for site, c in self._sessions.items()}

    def broker_status(self) -> BrokerStatus:
        """The sessions' broker status as one (``/api/health``): connected when every
        session is (vacuously so when this worker owns no site yet), the connects counted
        so that only reconnects show as such, the first error any session has."""
        sessions = list(self._sessions.values())
        statuses = [c.status for c in sessions]
        return BrokerStatus(
            connected=all(st.connected for st in statuses),
            host=self.config.host,
            port=self.config.port,
            connects=sum(st.connects for st in statuses) - max(len(statuses) - 1, 0),
            disconnects=sum(st.disconnects for st in statuses),
            last_error=next((st.last_error for st in statuses if st.last_error), None),
            last_change=max((st.last_change or 0.0 for st in statuses), default=None) or None,
        )

    def update_subscriptions(self) -> tuple[list[str], list[str]]:
        """The adapters or the registry changed: every session subscribes anew. Returns the
        filters added and removed, over all sessions."""
        added: list[str] = []
        removed: list[str] = []
        for consumer in self._sessions.values():
            plus, minus = consumer.update_subscriptions()
            added += plus
            removed += minus
        return added, removed

    # -- ownership listeners ---------------------------------------------------------------
    async def acquire(self, site: str, token: int = 0) -> None:
        """Rebuild ``site``'s rule state, then connect its session (module doc). Raises when
        the rebuild fails: the ownership then gives the site back."""
        if site in self._sessions:
            return
        if self.rebuild is not None and site != SITELESS:
            await self.rebuild(site)
        consumer = self._consumer(site)
        self._sessions = {**self._sessions, site: consumer}
        consumer.start()
        if not await asyncio.to_thread(consumer.wait_subscribed, self.subscribe_wait_s):
            # paho keeps reconnecting: the broker holds the site's messages meanwhile
            log.warning("cluster: site %s session %s not subscribed yet (broker unreachable?)",
                        site, consumer.client_id)  # fmt: skip
        log.info("cluster: consuming site %s as %s (token %d)", site, consumer.client_id, token)

    async def release(self, site: str) -> None:
        """Stop consuming ``site`` and disconnect its session (module doc)."""
        consumer = self._sessions.get(site)
        if consumer is None:
            return
        await asyncio.to_thread(consumer.stop, self.release_drain_s)
        self._sessions = {s: c for s, c in self._sessions.items() if s != site}
        if consumer.gate is not None:
            self.gates.remove(consumer.gate)
        log.info("cluster: stopped consuming site %s", site)

    async def stop(self) -> None:
        """Disconnect every session (the ownership's ``stop`` normally releases them first)."""
        for site in list(self._sessions):
            await self.release(site)

    # -- internals -------------------------------------------------------------------------
    def _consumer(self, site: str) -> MqttConsumer:
        topics = self.topics
        consumer = MqttConsumer(
            self.config,
            self.normaliser,
            self.writer,
            self.bus,
            protocol=self.protocol,
            client_id=session_client_id(self.client_prefix, site),
            topics=lambda: topics.filters(site),
            session_expiry_s=self.session_expiry_s,
            accept=topics.siteless_accepts if site == SITELESS else None,
            own_acks=False,
        )
        consumer.unregistered = self.unregistered
        gate = AckGate(consumer.send_acks)
        consumer.gate = gate
        self.gates.add(gate)
        return consumer

    def _acknowledge(self, tokens: list[tuple[int, int]]) -> None:
        """The writer committed these (writer thread): each session gets its own tokens,
        by generation; tokens of a connection that is gone are dropped (redelivered)."""
        by_generation = {c.generation: c for c in self._sessions.values()}
        mine: dict[int, list[tuple[int, int]]] = {}
        for token in tokens:
            if token[0] in by_generation:
                mine.setdefault(token[0], []).append(token)
        for generation, owned in mine.items():
            by_generation[generation].acknowledge(owned)
