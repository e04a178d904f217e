"""Webhook notifier: POST JSON, signed.

Headers: ``X-Lianfang-Timestamp`` (epoch seconds) and ``X-Lianfang-Signature:
sha256=<hex>``, the HMAC-SHA256 of ``<timestamp>.<body>`` with the shared secret, so a
receiver can check origin and freshness. Timeouts, connection errors, 408, 429 and 5xx are
worth retrying (``Retry-After`` is honoured by the dispatcher); other 4xx are not.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import httpx

from gateway.notify.base import Message, SendResult, notification_body
from gateway.notify.http_common import (
    MAX_RETRY_AFTER_S,
    RETRYABLE_STATUS,
    env_secret,
    parse_retry_after,
    post,
)
from gateway.notify.policy import RetryPolicy
from gateway.routing.model import Webhook

__all__ = [
    "MAX_RETRY_AFTER_S",
    "RETRYABLE_STATUS",
    "WebhookNotifier",
    "parse_retry_after",
    "sign",
]


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookNotifier:
    def __init__(self, hook: Webhook, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.hook = hook
        self.url = hook.url or env_secret(hook.url_env or "", f"webhooks.{hook.name}.url_env")
        self.secret = (
            env_secret(hook.secret_env, f"webhooks.{hook.name}.secret_env").encode()
            if hook.secret_env
            else None
        )
        self.policy = RetryPolicy(hook.max_attempts, hook.backoff_s, hook.backoff_max_s)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(
            timeout=self.hook.timeout_s, transport=self._transport, follow_redirects=False
        )

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def send(self, message: Message) -> SendResult:
        if self._client is None:
            await self.start()
        assert self._client is not None
        body = json.dumps(
            notification_body(message),
            ensure_ascii=False,
            separators=(",", ":"),
        ).encode()
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "lianfang-gateway",
            "X-Lianfang-Timestamp": ts,
            "X-Lianfang-Notification": str(message.notification_id),
        }
        if self.secret is not None:
            headers["X-Lianfang-Signature"] = sign(self.secret, ts, body)
        return await post(
            self._client, self.url, content=body, headers=headers, timeout_s=self.hook.timeout_s
        )
