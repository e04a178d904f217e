"""Notifiers: the webhook against a local HTTP server (signature, retries with backoff,
Retry-After, dead-letter; the ``server`` fixture of ``conftest.py``), the retry policy, and
MQTT through a private Mosquitto."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import threading
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.config.settings import MqttConfig
from gateway.notify.base import IncidentPlace, Message
from gateway.notify.console import ConsoleNotifier, NotificationHub
from gateway.notify.dispatcher import Dispatcher, Outgoing
from gateway.notify.mqtt import MqttNotifier
from gateway.notify.policy import RetryPolicy
from gateway.notify.webhook import WebhookNotifier, parse_retry_after
from gateway.routing.model import Webhook
from tests.incidents.helpers import T0, FakeClock
from tests.support.brokers import MosquittoBroker
from tests.support.http_server import Server


def message(n: int = 1) -> Message:
    return Message(
        n,
        7,
        "webhook:city",
        "police-desk",
        "beat-1",
        "值班台",
        {"v": 1, "incident_id": 7, "title_zh": "一键报警", "notification_id": n},
    )


async def test_webhook_signs_the_body(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    hook = WebhookNotifier(Webhook(name="city", url=server.url, secret_env="HOOK_SECRET"))
    result = await hook.send(message())
    await hook.stop()
    assert result.ok
    headers, body = server.requests[0]
    ts = headers["X-Lianfang-Timestamp"]
    expected = hmac.new(b"s3cret", ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["X-Lianfang-Signature"] == f"sha256={expected}"
    sent = json.loads(body)
    assert sent["recipient_key"] == "police-desk/beat-1"
    assert sent["recipient"]["kind"] == "police-desk" and sent["recipient"]["id"] == "beat-1"


async def test_webhook_classifies_failures(server: Server) -> None:
    server.script[:] = [(503, {"Retry-After": "7"}), (400, {}), (429, {})]
    hook = WebhookNotifier(Webhook(name="city", url=server.url))
    first, second, third = [await hook.send(message()) for _ in range(3)]
    await hook.stop()
    assert (first.ok, first.retryable, first.retry_after_s) == (False, True, 7.0)
    assert (second.ok, second.retryable) == (False, False)
    assert third.retryable and third.retry_after_s is None


async def test_webhook_timeout_and_refused_connection_are_retryable() -> None:
    hook = WebhookNotifier(Webhook(name="city", url="http://127.0.0.1:9/hook", timeout_s=0.5))
    result = await hook.send(message())
    await hook.stop()
    assert result.retryable and not result.ok


def test_retry_after_http_date_and_backoff_bounds() -> None:
    assert parse_retry_after("Tue, 12 May 2026 02:00:30 GMT", T0) == 30.0
    assert parse_retry_after("soon") is None
    policy = RetryPolicy(max_attempts=5, base_s=1, max_s=8)
    rng = random.Random(1)
    for attempts, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (9, 8)]:
        d = policy.delay(attempts, rng=rng)
        assert ceiling / 2 <= d <= ceiling
    assert policy.delay(1, 60, rng) == 60
    assert policy.exhausted(5) and not policy.exhausted(4)


async def test_dispatcher_retries_honours_retry_after_then_dead_letters(
    server: Server, tmp_path: Path
) -> None:
    """Against the local server: 503 (Retry-After 120) → 500 → 500 → dead after 3 attempts."""
    from tests.incidents.helpers import engine_at

    server.script[:] = [(503, {"Retry-After": "120"}), (500, {}), (500, {})]
    clock = FakeClock()
    hook = WebhookNotifier(Webhook(name="city", url=server.url, max_attempts=3, backoff_s=1))
    recorded: list[tuple[Any, ...]] = []

    async def run_db(fn: Any, *args: Any) -> Any:
        for a in args[1]:  # record_attempts(engine, attempts)
            recorded.append((a.status, a.attempts, a.at, a.next_at, a.error))
        return None

    d = Dispatcher(
        engine_at(tmp_path),
        {"webhook:city": hook},
        clock=clock,
        run_db=run_db,
        policies={"webhook:city": hook.policy},
        rng=random.Random(3),
    )
    d.submit([Outgoing(1, 7, "webhook:city", "police-desk", "beat-1", "值班台", {"v": 1}, T0)])
    await d.drain()
    status, attempts, _at, next_at, error = recorded[-1]
    assert (status, attempts, error) == ("retry", 1, "HTTP 503")
    assert (next_at - T0).total_seconds() == 120  # Retry-After wins over the 0.5–1 s backoff
    clock.advance(119)
    await d.tick()
    await d.drain()
    assert len(server.requests) == 1
    clock.advance(1)
    await d.tick()
    await d.drain()
    assert recorded[-1][:2] == ("retry", 2)
    clock.advance(5)
    await d.tick()
    await d.drain()
    assert recorded[-1][:2] == ("dead", 3)
    assert len(server.requests) == 3
    clock.advance(3600)
    await d.tick()
    await d.drain()
    assert len(server.requests) == 3  # dead letters are not retried
    await hook.stop()


@pytest.mark.broker
async def test_mqtt_notifier_publishes_per_recipient_topic(mosquitto: MosquittoBroker) -> None:
    got: list[tuple[str, dict[str, Any]]] = []
    ready = threading.Event()
    sub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="desk")
    sub.on_message = lambda _c, _u, m: got.append((m.topic, json.loads(m.payload)))
    sub.on_subscribe = lambda *_a: ready.set()
    sub.connect("127.0.0.1", mosquitto.port)
    sub.subscribe("lianfang/notify/#", qos=1)
    sub.loop_start()
    assert await asyncio.to_thread(ready.wait, 10)
    notifier = MqttNotifier(MqttConfig(host="127.0.0.1", port=mosquitto.port, client_id="t"))
    await notifier.start()
    try:
        result = await notifier.send(message(5))
        assert result.ok
        for _ in range(200):
            if got:
                break
            await asyncio.sleep(0.01)
        assert got[0][0] == "lianfang/notify/police-desk/beat-1"
        assert got[0][1]["notification_id"] == 5
    finally:
        await notifier.stop()
        sub.loop_stop()
        sub.disconnect()


async def test_console_item_keeps_the_recipient_object_and_its_key() -> None:
    """The outbox payload carries ``recipient`` as ``{kind, id, name}`` (as MQTT and webhooks
    send it); the console item keeps that object and adds ``recipient_key`` (``kind/id``) and
    ``type`` beside it, neither overwriting the other (the key was once lost this way)."""
    hub = NotificationHub()
    place = IncidentPlace("shifan-01", "demo-compound", None)
    seen: list[tuple[IncidentPlace | None, str | None]] = []

    def admits(p: IncidentPlace | None, recipient: str | None) -> bool:
        seen.append((p, recipient))
        return True

    stream = hub.watch(admits)
    assert isinstance(stream, AsyncGenerator)
    assert await anext(stream) == {"type": "subscribed"}
    notifier = ConsoleNotifier(hub)
    desk = {"kind": "police-desk", "id": "beat-1", "name": "值班台"}
    payload = {"v": 1, "incident_id": 7, "title_zh": "一键报警", "recipient": desk,
               "type": "not-this", "notification_id": 3}  # fmt: skip
    outbox = Message(3, 7, "console", "police-desk", "beat-1", "值班台", payload, place)
    assert (await notifier.send(outbox)).ok
    item = await anext(stream)
    assert item["type"] == "notification"
    assert item["recipient"] == desk
    assert item["recipient_key"] == "police-desk/beat-1"
    assert (item["incident_id"], item["notification_id"]) == (7, 3)
    assert seen == [(place, "police-desk/beat-1")]  # the hub filters on the key
    assert payload["recipient"] == desk and "recipient_key" not in payload  # not mutated

    # a payload without the object (an older outbox row) gets it from the row's columns
    await notifier.send(message(4))
    item = await anext(stream)
    assert item["recipient"] == desk and item["recipient_key"] == "police-desk/beat-1"
    await stream.aclose()


async def test_outcomes_sent_together_are_written_back_in_one_transaction(tmp_path: Path) -> None:
    """A panic's notifications go out at once; their outcomes share one write in the incident
    thread (which the next alarm's incident would otherwise queue behind), each recorded."""
    from tests.incidents.helpers import engine_at

    calls: list[list[Any]] = []

    async def run_db(fn: Any, *args: Any) -> Any:
        calls.append(list(args[1]))
        return None

    d = Dispatcher(
        engine_at(tmp_path),
        {"console": ConsoleNotifier(NotificationHub())},
        clock=FakeClock(),
        run_db=run_db,
    )
    d.submit(
        [
            Outgoing(n, 7, "console", "grid_worker", f"w{n}", "网格员", {"v": 1}, T0)
            for n in range(5)
        ]
    )
    await d.drain()
    assert len(calls) == 1
    assert sorted((a.notification_id, a.status, a.attempts) for a in calls[0]) == [
        (n, "sent", 1) for n in range(5)
    ]
