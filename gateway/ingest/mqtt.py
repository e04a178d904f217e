"""The MQTT consumer: QoS 1, persistent session, manual acknowledgement after commit.

- One stable client id, clean start off: the broker queues messages while we are away.
- ``manual_ack``: a PUBACK goes out only when the batch writer has committed the message's
  events, so a crash means redelivery, never loss.
- An ack is bound to the connection it arrived on. After a reconnect the broker resends what
  was not acknowledged (and may reuse packet ids), so acks from an older connection are dropped.
- Only one consumer per client id may run on a machine (a lock file in the data directory):
  several web workers must not start competing consumers.
- In cluster mode each owned site has a consumer of its own (gateway.cluster.site_sessions):
  its own client id and topic filters, and one writer whose acknowledgements are routed to
  the consumer by connection generation (``generation``: unique across consumers).
"""

from __future__ import annotations

import itertools
import logging
import ssl
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gateway.bus import EventBus
from gateway.config.settings import MqttConfig
from gateway.events import Event
from gateway.ingest.ack_gate import AckGate, gated
from gateway.ingest.consumer_lock import ConsumerLockError as ConsumerLockError
from gateway.ingest.consumer_lock import SingleConsumerLock as SingleConsumerLock
from gateway.ingest.consumer_lock import consumer_lock_path as consumer_lock_path
from gateway.ingest.paho_client import BufferedReadClient
from gateway.ingest.pipeline import Normaliser
from gateway.ingest.reasons import Reason
from gateway.ingest.unregistered import UnregisteredPanics
from gateway.storage.writer import BatchWriter, WriteItem

log = logging.getLogger(__name__)

_PUBACK = struct.Struct("!BBH")
_PUBACK_HEADER = 0x40  # PUBACK, remaining length 2: packet id only (reason code 0 implied)
HANDOFF_MESSAGES = 64  # most messages received before they are handed on together
UNREACHABLE_LOG_EVERY_S = 30.0  # while the broker cannot be reached, say so this often
SESSION_EXPIRY_S = 7 * 24 * 3600  # MQTT 5: how long the broker keeps our queue while we are away
# Connection generations, unique across every consumer of the process: an ack token
# (generation, packet id) then names the one connection it may be sent on.
_GENERATIONS = itertools.count(1)


@dataclass
class BrokerStatus:
    connected: bool = False
    host: str = ""
    port: int = 0
    connects: int = 0
    disconnects: int = 0
    last_error: str | None = None
    last_change: float | None = None


def use_broker_account(client: mqtt.Client, config: MqttConfig) -> None:
    """The gateway's broker credentials and TLS settings on a client (the consumer's, and a
    topic watch's: gateway.watch.topics)."""
    if config.username:
        client.username_pw_set(config.username, config.password())
    tls = config.tls
    if tls.enabled:
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
            cert_reqs=ssl.CERT_NONE if tls.insecure_skip_verify else ssl.CERT_REQUIRED,
        )
        if tls.insecure_skip_verify:
            client.tls_insecure_set(True)


class MqttConsumer:
    """Receives on paho's network thread, normalises there, hands off to the batch writer.

    The defaults are the single-process gateway's one consumer. A site's session in cluster
    mode passes ``client_id`` and ``topics`` (its filters), maybe ``accept`` (a topic this
    session must leave to another is acknowledged unread) and ``own_acks=False``: the writer
    is shared, and its acknowledgements are routed by ``generation``."""

    def __init__(
        self,
        config: MqttConfig,
        normaliser: Normaliser,
        writer: BatchWriter,
        bus: EventBus,
        *,
        protocol: Literal["v5", "v311"] = "v5",
        receive_maximum: int = 4096,
        client_id: str | None = None,
        topics: Callable[[], list[str]] | None = None,
        session_expiry_s: int = SESSION_EXPIRY_S,
        accept: Callable[[str], bool] | None = None,
        own_acks: bool = True,
    ) -> None:
        self.config = config
        self.client_id = client_id or config.client_id
        self.session_expiry_s = session_expiry_s
        self._wanted = topics if topics is not None else normaliser.subscriptions
        self._accept = accept
        self.normaliser = normaliser
        self.writer = writer
        self.bus = bus
        self.protocol = protocol
        self.receive_maximum = receive_maximum
        self.status = BrokerStatus(host=config.host, port=config.port)
        self._generation = next(_GENERATIONS)  # new on every (re)connect; acks carry theirs
        self._accepting = threading.Event()
        self._subscribed = threading.Event()
        self._pending_events: list[Event] = []  # received, not yet on the bus (network thread)
        self._pending_items: list[WriteItem | None] = []
        self._topics: list[str] = []  # topic filters subscribed on this connection
        self._connect_failures = 0
        self._unreachable_logged_at = -UNREACHABLE_LOG_EVERY_S
        self._pending_acks: list[tuple[int, int]] = []  # counted-only messages, not stored
        self._client = self._make_client()
        if own_acks:
            writer.acknowledge = self.acknowledge
        # Set by the gateway when rules and incidents settle panics (gateway.ingest.ack_gate).
        self.gate: AckGate | None = None
        # Set by the gateway: raises the incidents of unregistered devices' panics.
        self.unregistered: UnregisteredPanics | None = None

    # -- set-up ----------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        v5 = self.protocol == "v5"
        client = BufferedReadClient(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=None if v5 else False,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            manual_ack=True,
        )
        client.reconnect_delay_set(
            min_delay=max(1, int(self.config.reconnect_min_s)),
            max_delay=max(1, int(self.config.reconnect_max_s)),
        )
        use_broker_account(client, self.config)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_read_done = self._hand_off
        client.on_incoming_publish = self._on_incoming_publish
        return client

    def start(self) -> None:
        """Connect in the background; paho reconnects with backoff on its own."""
        self._accepting.set()
        log.info("MQTT: connecting to %s:%s as %s", self.config.host, self.config.port,
                 self.client_id)  # fmt: skip
        properties = None
        if self.protocol == "v5":
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = self.session_expiry_s
            properties.ReceiveMaximum = self.receive_maximum
            self._client.connect_async(
                self.config.host,
                self.config.port,
                keepalive=self.config.keepalive_s,
                clean_start=False,
                properties=properties,
            )
        else:
            self._client.connect_async(
                self.config.host, self.config.port, keepalive=self.config.keepalive_s
            )
        self._client.loop_start()

    def update_subscriptions(self) -> tuple[list[str], list[str]]:
        """Subscribe to the filters the adapters take now and drop the ones none takes any
        more (profiles reloaded). Returns ``(added, removed)``. A connection made later
        subscribes to the new set anyway."""
        wanted = self._wanted()
        added = [t for t in wanted if t not in self._topics]
        removed = [t for t in self._topics if t not in wanted]
        if self.status.connected:
            if added:
                self._client.subscribe([(t, 1) for t in added])
            if removed:
                self._client.unsubscribe(removed)
        self._topics = wanted
        if added or removed:
            log.info("MQTT subscriptions: +%s -%s", added, removed)
        return added, removed

    def wait_subscribed(self, timeout: float) -> bool:
        """Block until connected and the broker has granted our subscriptions."""
        return self._subscribed.wait(timeout)

    def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop taking messages, let the writer commit and acknowledge what it holds, disconnect."""
        self._accepting.clear()
        deadline = time.monotonic() + drain_timeout
        while self.writer.backlog and time.monotonic() < deadline:
            time.sleep(0.02)
        self.writer.flush(timeout=max(0.0, deadline - time.monotonic()))
        self._client.disconnect()
        self._client.loop_stop()

    @property
    def generation(self) -> int:
        """The current connection's generation (the first element of its ack tokens)."""
        return self._generation

    # -- paho callbacks (network thread) -----------------------------------------------
    def _on_connect(
        self, client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        if reason.is_failure:
            self.status.last_error = f"connect refused: {reason}"
            log.error(
                "MQTT connect to %s:%s refused: %s", self.config.host, self.config.port, reason
            )
            return
        self._generation = next(_GENERATIONS)
        if self.gate is not None:
            self.gate.forget()  # the broker resends what was held; it is held again
        self.status.connected = True
        self.status.connects += 1
        self.status.last_change = time.time()
        self.status.last_error = None
        if self._connect_failures:
            log.info("MQTT broker reachable again after %d failed attempts", self._connect_failures)
            self._connect_failures = 0
            self._unreachable_logged_at = -UNREACHABLE_LOG_EVERY_S
        self._topics = self._wanted()
        topics = [(t, 1) for t in self._topics]
        if topics:
            client.subscribe(topics)
        else:
            self._subscribed.set()
        log.info("MQTT connected to %s:%s, subscribed to %d topic filters",
                 self.config.host, self.config.port, len(topics))  # fmt: skip

    def _on_connect_fail(self, _client: mqtt.Client, _userdata: Any) -> None:
        """The broker could not be reached (refused, unreachable, timed out): said at once,
        then every ``UNREACHABLE_LOG_EVERY_S`` while it lasts — never silent."""
        self._connect_failures += 1
        self.status.last_error = "broker unreachable"
        now = time.monotonic()
        if now - self._unreachable_logged_at >= UNREACHABLE_LOG_EVERY_S:
            self._unreachable_logged_at = now
            log.warning(
                "MQTT broker %s:%s unreachable (%d attempts so far); retrying with backoff",
                self.config.host, self.config.port, self._connect_failures,
            )  # fmt: skip

    def _on_disconnect(
        self, _client: mqtt.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any
    ) -> None:
        self._generation = next(_GENERATIONS)  # acks queued for the old connection: not sent
        self._subscribed.clear()
        self.status.connected = False
        self.status.disconnects += 1
        self.status.last_change = time.time()
        if reason is not None and getattr(reason, "is_failure", False):
            self.status.last_error = f"disconnected: {reason}"
            log.warning("MQTT disconnected (%s); reconnecting with backoff", reason)

    def _on_subscribe(
        self, _client: mqtt.Client, _userdata: Any, _mid: int, reasons: Any, _props: Any
    ) -> None:
        refused = [r for r in reasons if getattr(r, "is_failure", False)]
        if refused:
            self.status.last_error = f"subscription refused: {refused}"
            log.error("broker refused %d of our subscriptions (ACL?): %s", len(refused), refused)
        self._subscribed.set()

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        """paho's path: packets the lean one leaves to paho (v5 properties, split packets)."""
        try:
            topic = msg.topic
        except UnicodeDecodeError:  # brokers should refuse these; be safe if one does not
            topic = msg._topic.decode("utf-8", "backslashreplace")
        # QoS 1 only: we subscribe at QoS 1, so the broker never sends QoS 2.
        self._receive(topic, bytes(msg.payload), msg.mid if msg.qos == 1 else 0)

    def _on_incoming_publish(self, topic: bytes, payload: bytes, qos: int, mid: int) -> None:
        """The lean path (``BufferedReadClient.on_incoming_publish``): a plain QoS 0/1 PUBLISH."""
        try:
            text = topic.decode("utf-8")
        except UnicodeDecodeError:
            text = topic.decode("utf-8", "backslashreplace")
        self._receive(text, payload, mid if qos == 1 else 0)

    def _receive(self, topic: str, payload: bytes, mid: int) -> None:
        """One message (network thread); ``mid`` 0 for QoS 0, which is never acknowledged."""
        if not self._accepting.is_set():
            return  # shutting down: unacknowledged, so the broker redelivers next session
        if self._accept is not None and not self._accept(topic):
            if mid:  # another session's message (gateway.cluster.site_topics): not ours to read
                self._pending_acks.append((self._generation, mid))
            return
        try:
            outcome = self.normaliser.process(topic, payload)
        except Exception as exc:  # never let one message kill the network thread
            log.exception("unexpected failure normalising a message on %s", topic)
            outcome = self.normaliser.reject(
                topic,
                payload,
                self.normaliser.clock(),
                Reason.ADAPTER_ERROR,
                repr(exc)[:500],
                None,
            )
        token = (self._generation, mid) if mid else None
        if outcome.counted_only:
            # Quarantined past the row rates: nothing to store, so nothing to wait for. Its
            # PUBACK goes with this read's hand-off, and a storm never reaches the writer.
            if token is not None:
                self._pending_acks.append(token)
                if len(self._pending_acks) >= HANDOFF_MESSAGES:
                    self._hand_off()
            return
        gate = self.gate
        alarms = outcome.alarms
        held = bool(alarms)
        if gate is not None and token is not None:
            ids = gated(outcome.events, outcome.duplicate_events, gate)
            ids += [a.alarm_id for a in alarms]  # an unregistered device's panic: its incident
            if ids:
                gate.hold(token, ids)  # before the bus: the rules cannot settle it first
                held = True
        if alarms and self.unregistered is not None:
            self.unregistered.raise_alarms(alarms)  # after the hold: it cannot settle first
        self._pending_events.extend(outcome.events)
        self._pending_items.append(WriteItem(outcome.events, outcome.quarantined, token))
        # Hand work on per read, not per message: each hand-off wakes another thread, which
        # then competes with this one for the GIL. A panic goes at once; the rest waits at
        # most HANDOFF_MESSAGES messages (a few ms at full load) or the end of the read.
        if held or len(self._pending_items) >= HANDOFF_MESSAGES:
            self._hand_off()

    def _hand_off(self) -> None:
        """Publish pending events on the bus and queue them for the writer (network thread);
        acknowledge the messages that were only counted."""
        if self._pending_acks:
            acks, self._pending_acks = self._pending_acks, []
            self.send_acks(acks)
        if not self._pending_items:
            return
        events, self._pending_events = self._pending_events, []
        items, self._pending_items = self._pending_items, []
        self.bus.publish_many(events)
        self.writer.submit_many(items)

    def acknowledge(self, tokens: list[tuple[int, int]]) -> None:
        """PUBACKs for a committed batch (writer thread), in one write to the socket.

        paho's ``ack()`` queues one packet and wakes the network thread once per message;
        for a batch of hundreds that is hundreds of syscalls and thread switches. The PUBACKs
        are concatenated into one queued write instead (the 4-byte form, valid in MQTT 3.1.1
        and 5). Acks of an older connection are dropped: after a reconnect the broker resends
        those messages and may reuse their packet ids.
        """
        if self.gate is not None:
            tokens = self.gate.committed(tokens)  # panics wait for their incident
        self.send_acks(tokens)

    def send_acks(self, tokens: list[tuple[int, int]]) -> None:
        """Queue PUBACKs for ``tokens`` (any thread), dropping those of older connections."""
        generation = self._generation
        packets = b"".join(
            _PUBACK.pack(_PUBACK_HEADER, 2, mid) for g, mid in tokens if g == generation
        )
        if packets:
            # paho has no public call for this; _packet_queue is what ack() itself uses.
            self._client._packet_queue(_PUBACK_HEADER, packets, 0, 0)
