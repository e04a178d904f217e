"""MQTT notifier: one topic per recipient, ``<prefix>/<kind>/<id>`` (default prefix
``lianfang/notify``), QoS 1, its own paho client. ``send`` returns once the broker has
acknowledged (PUBACK), so "sent" means the broker holds it.

With ``on_ack`` the same connection also receives acknowledgements: it subscribes (QoS 1)
to ``<ack_prefix>/+/+`` (default ``lianfang/ack/<kind>/<id>``, one topic per recipient,
which the broker ACL lets only that recipient's account publish), keeps a persistent
session so acknowledgements published while the gateway restarts wait at the broker, and
sends each PUBACK only after ``on_ack`` has returned ``True`` (recorded or refused for
good); ``False`` or an exception leaves it unacknowledged, so the broker delivers it again
on the next connection. Notifications that ask for an acknowledgement carry ``ack_topic``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.config.settings import MqttConfig
from gateway.notify.base import Message, SendResult

log = logging.getLogger(__name__)

TOPIC_PREFIX = "lianfang/notify"
ACK_PREFIX = "lianfang/ack"
PUBACK_TIMEOUT_S = 5.0

AckHandler = Callable[[str, bytes], Coroutine[Any, Any, bool]]
"""``(topic, payload) → done``: ``True`` once the acknowledgement is recorded or refused for
good (the broker gets its PUBACK), ``False`` to have it delivered again later."""


def topic_for(kind: str, recipient_id: str, prefix: str = TOPIC_PREFIX) -> str:
    return f"{prefix}/{kind}/{recipient_id}"


class MqttNotifier:
    def __init__(
        self,
        config: MqttConfig,
        *,
        client_id: str | None = None,
        prefix: str = TOPIC_PREFIX,
        puback_timeout_s: float = PUBACK_TIMEOUT_S,
        on_ack: AckHandler | None = None,
        ack_prefix: str = ACK_PREFIX,
    ) -> None:
        self.config = config
        self.prefix = prefix
        self.puback_timeout_s = puback_timeout_s
        self.on_ack = on_ack
        self.ack_prefix = ack_prefix
        self._loop: asyncio.AbstractEventLoop | None = None
        self._accepting = threading.Event()
        self._generation = 0  # PUBACKs owed to an old connection must not be sent on a new one
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[bool]]] = {}
        self._early: set[int] = set()
        self._abandoned: dict[int, bool] = {}  # timed out: drop their late PUBACK
        self._connected = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"{config.client_id}-notify",
            protocol=mqtt.MQTTv311,
            # Receiving acknowledgements: a persistent session keeps the subscription and
            # the acknowledgements published while we are away.
            clean_session=on_ack is None,
            manual_ack=on_ack is not None,
        )
        self.client.max_inflight_messages_set(1000)
        if config.username:
            self.client.username_pw_set(config.username, config.password())
        if config.tls.enabled:
            self.client.tls_set(
                ca_certs=str(config.tls.ca_file) if config.tls.ca_file else None,
                certfile=str(config.tls.cert_file) if config.tls.cert_file else None,
                keyfile=str(config.tls.key_file) if config.tls.key_file else None,
            )
            if config.tls.insecure_skip_verify:
                self.client.tls_insecure_set(True)
        self.client.reconnect_delay_set(1, max(1, int(config.reconnect_max_s)))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        if on_ack is not None:
            self.client.on_subscribe = self._on_subscribe
            self.client.on_message = self._on_message

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._accepting.set()
        self.client.connect_async(self.config.host, self.config.port, self.config.keepalive_s)
        self.client.loop_start()
        await asyncio.to_thread(self._connected.wait, 10.0)

    async def stop(self) -> None:
        self._accepting.clear()  # acknowledgements still arriving wait for the next session
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # -- paho callbacks (network thread) -----------------------------------------------------
    def ack_subscription(self) -> str:
        return f"{self.ack_prefix}/+/+"

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if getattr(reason, "is_failure", False):
            log.warning("MQTT notifier: broker refused the connection (%s)", reason)
            return
        if self.on_ack is not None:
            client.subscribe(self.ack_subscription(), qos=1)
        self._connected.set()

    def _on_disconnect(self, *_args: Any) -> None:
        self._generation += 1
        self._connected.clear()

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, reasons: Any, _props: Any) -> None:
        refused = [r for r in reasons if getattr(r, "is_failure", False)]
        if refused:
            log.error(
                "broker refused the subscription to %s (ACL?): acknowledgements over MQTT "
                "will not arrive (%s)",
                self.ack_subscription(),
                refused,
            )

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        loop, handler = self._loop, self.on_ack
        if loop is None or handler is None or not self._accepting.is_set():
            return  # unacknowledged: the broker delivers it again on the next connection
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = msg._topic.decode("utf-8", "backslashreplace")
        generation, mid, qos = self._generation, msg.mid, msg.qos
        future = asyncio.run_coroutine_threadsafe(handler(topic, bytes(msg.payload)), loop)

        def settle(done: Any) -> None:
            try:
                ok = bool(done.result())
            except Exception:
                log.exception("acknowledgement on %s could not be handled", topic)
                ok = False
            if ok and qos > 0 and generation == self._generation:
                client.ack(mid, qos)

        future.add_done_callback(settle)

    def _on_publish(self, _c: Any, _u: Any, mid: int, _reason: Any, _props: Any) -> None:
        # Never call paho while holding our lock (paho holds its own locks around this
        # callback): the lock only guards the two small tables.
        with self._lock:
            entry = self._waiting.pop(mid, None)
            if entry is None and not self._abandoned.pop(mid, False):
                self._early.add(mid)  # PUBACK before send() registered its future
        if entry is not None:
            loop, fut = entry
            loop.call_soon_threadsafe(_resolve, fut)

    # -- sending -----------------------------------------------------------------------------
    async def send(self, message: Message) -> SendResult:
        if not self._connected.is_set():
            return SendResult.retry("not connected to the MQTT broker")
        topic = topic_for(message.recipient_kind, message.recipient_id, self.prefix)
        payload = message.payload
        if self.on_ack is not None and payload.get("ack_required"):
            payload = {
                **payload,
                "ack_topic": topic_for(
                    message.recipient_kind, message.recipient_id, self.ack_prefix
                ),
            }
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        info = self.client.publish(topic, body, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return SendResult.retry(f"publish failed: {mqtt.error_string(info.rc)}")
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                return SendResult.sent()
            self._waiting[info.mid] = (loop, fut)
        try:
            await asyncio.wait_for(fut, self.puback_timeout_s)
        except TimeoutError:
            with self._lock:
                if self._waiting.pop(info.mid, None) is not None:
                    self._abandoned[info.mid] = True
            return SendResult.retry(f"no PUBACK within {self.puback_timeout_s:g}s")
        return SendResult.sent()


def _resolve(fut: asyncio.Future[bool]) -> None:
    if not fut.done():
        fut.set_result(True)
