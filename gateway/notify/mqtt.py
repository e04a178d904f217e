"""MQTT notifier: one topic per recipient, ``<prefix>/<kind>/<id>`` (default prefix
``lianfang/notify``), QoS 1, its own paho client. ``send`` returns once the broker has
acknowledged (PUBACK), so "sent" means the broker holds it."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from gateway.config.settings import MqttConfig
from gateway.notify.base import Message, SendResult

log = logging.getLogger(__name__)

TOPIC_PREFIX = "lianfang/notify"
PUBACK_TIMEOUT_S = 5.0


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
    ) -> None:
        self.config = config
        self.prefix = prefix
        self.puback_timeout_s = puback_timeout_s
        self._lock = threading.Lock()
        self._waiting: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Future[bool]]] = {}
        self._early: set[int] = set()
        self._abandoned: dict[int, bool] = {}  # timed out: drop their late PUBACK
        self._connected = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"{config.client_id}-notify",
            protocol=mqtt.MQTTv311,
            clean_session=True,
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

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self.client.connect_async(self.config.host, self.config.port, self.config.keepalive_s)
        self.client.loop_start()
        await asyncio.to_thread(self._connected.wait, 10.0)

    async def stop(self) -> None:
        self.client.disconnect()
        await asyncio.to_thread(self.client.loop_stop)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    # -- paho callbacks (network thread) -----------------------------------------------------
    def _on_connect(self, *_args: Any) -> None:
        self._connected.set()

    def _on_disconnect(self, *_args: Any) -> None:
        self._connected.clear()

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
        body = json.dumps(message.payload, ensure_ascii=False, separators=(",", ":"))
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
