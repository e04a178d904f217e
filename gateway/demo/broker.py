"""Embedded MQTT broker (amqtt) for zero-setup demos and tests.

**Demo only.** It listens on loopback only and lets any client in without credentials, so
nothing outside this machine can reach it. A real site runs its own broker (Mosquitto, EMQX)
with passwords and TLS; the gateway connects to it through ``mqtt:`` in ``lianfang.yaml``.

What it does differently from amqtt's defaults:

- one TCP listener on loopback; no websockets, no ``$SYS`` topics, no packet logging;
- port ``0`` binds an ephemeral port atomically and :attr:`EmbeddedBroker.port` reports it;
- persistent sessions (``clean_session=False``) keep QoS 1/2 messages for a disconnected
  client, as MQTT 3.1.1 requires. amqtt 0.12 drops them for every client its
  ``AnonymousAuthPlugin(allow_anonymous=True)`` lets in (it marks *all* such sessions
  anonymous, even with a client id and username; Yakifo/amqtt#27, PR #248), so we use our
  own accept-all plug-in that does not;
- two amqtt 0.12 delivery bugs are patched in :class:`_Broker` (see there): messages queued
  for an offline session were delivered with the RETAIN flag set, and on connect a client was
  sent the retained messages matching *other* clients' subscriptions.

Sessions and retained messages live in memory only: a restart forgets them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from amqtt.broker import Broker
from amqtt.plugins.base import BaseAuthPlugin

log = logging.getLogger(__name__)

_LISTENER = "default"


class DemoAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt ships no type hints
    """Accept every client (the listener is loopback-only) without marking it anonymous.

    amqtt discards the session of an "anonymous" client when it disconnects, which would break
    ``clean_session=False`` for every client of the demo broker.
    """

    @dataclass
    class Config:
        pass

    async def authenticate(self, *, session: Any) -> bool:
        return True


class _Broker(Broker):  # type: ignore[misc]  # amqtt ships no type hints
    """amqtt's broker with two delivery fixes (both checked by tests/test_embedded_broker.py)."""

    async def _publish_session_retained_messages(self, session: Any) -> None:
        # amqtt 0.12 sends messages queued while the client was away with retain=True, so they
        # look like stale retained state. MQTT 3.1.1 §3.3.1.3: RETAIN is 0 for normal delivery.
        handler = self._get_handler(session)
        if handler is None:
            return
        tasks = []
        while not session.retained_messages.empty():
            queued = session.retained_messages.get_nowait()
            tasks.append(
                asyncio.ensure_future(
                    handler.mqtt_publish(queued.topic, queued.data, queued.qos, retain=False)
                )
            )
        if tasks:
            await asyncio.wait(tasks)

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Any
    ) -> None:
        # On every CONNECT amqtt 0.12 replays retained messages for *all* topic filters any
        # client subscribed to, to the connecting client. Only replay this session's own.
        topic_filter = subscription[0]
        subscribers = self._subscriptions.get(topic_filter, [])
        if not any(s.client_id == session.client_id for s, _ in subscribers):
            return
        await super()._publish_retained_messages_for_subscription(subscription, session)


def _loopback_host(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"  # one address, so port 0 binds one port
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"embedded broker host must be a loopback address, not {host!r}") from None
    if not address.is_loopback:
        raise ValueError(
            f"embedded broker host must be a loopback address, not {host!r}: it allows anonymous "
            "clients; use a real broker (Mosquitto, EMQX) with credentials for anything else"
        )
    return host


class EmbeddedBroker:
    """An in-process MQTT 3.1.1 broker on loopback. Use ``async with`` or start()/stop().

    ``session_expiry_s`` bounds how long a disconnected persistent session (and its queued
    messages) is kept; ``None`` keeps it until the broker stops.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        session_expiry_s: int | None = 3600,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be 0..65535, not {port}")
        self._host = _loopback_host(host)
        self._requested_port = port
        self._bound_port: int | None = None
        self._session_expiry_s = session_expiry_s
        self._broker: _Broker | None = None

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The listening port; after start() the real one when 0 was requested."""
        return self._bound_port if self._bound_port is not None else self._requested_port

    @property
    def running(self) -> bool:
        return self._broker is not None

    def config(self) -> dict[str, Any]:
        """The amqtt configuration used (bind address uses the requested port)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return {
            "listeners": {
                _LISTENER: {
                    "type": "tcp",
                    "bind": f"{host}:{self._requested_port}",
                    "max_connections": 0,
                }
            },
            "session_expiry_interval": self._session_expiry_s,
            # Only our auth plug-in: no $SYS broadcasts, no per-packet event/packet loggers.
            "plugins": {f"{DemoAuthPlugin.__module__}.{DemoAuthPlugin.__qualname__}": {}},
        }

    async def start(self) -> None:
        if self._broker is not None:
            raise RuntimeError("embedded broker is already running")
        broker = _Broker(self.config())
        await broker.start()  # raises amqtt BrokerError when the port is taken
        self._broker = broker
        self._bound_port = self._listening_port(broker)
        log.info("embedded MQTT broker listening on %s:%d (demo only)", self._host, self.port)

    async def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is None:
            return
        await broker.shutdown()
        log.info("embedded MQTT broker stopped")

    def _listening_port(self, broker: _Broker) -> int:
        server = broker._servers.get(_LISTENER)
        sockets = getattr(getattr(server, "instance", None), "sockets", None) or ()
        for sock in sockets:
            return int(sock.getsockname()[1])
        if self._requested_port == 0:
            raise RuntimeError("cannot tell which port the embedded broker bound")
        return self._requested_port

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
