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
import os
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from gateway.config.errors import ConfigError, ConfigErrors
from gateway.notify.base import Message, SendResult, notification_body
from gateway.notify.policy import RetryPolicy
from gateway.routing.model import Webhook

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 3600.0


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from ``Retry-After`` (delta-seconds or an HTTP date), capped at an hour."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(delta, 0.0), MAX_RETRY_AFTER_S)


def _env(name: str, what: str) -> str:
    value = os.environ.get(name)
    if value is None:
        raise ConfigErrors([ConfigError("<env>", what, f"environment variable {name} is not set")])
    return value


class WebhookNotifier:
    def __init__(self, hook: Webhook, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.hook = hook
        self.url = hook.url or _env(hook.url_env or "", f"webhooks.{hook.name}.url_env")
        self.secret = (
            _env(hook.secret_env, f"webhooks.{hook.name}.secret_env").encode()
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
        try:
            response = await self._client.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return SendResult.retry(f"timed out after {self.hook.timeout_s:g}s")
        except httpx.TransportError as exc:
            return SendResult.retry(f"{type(exc).__name__}: {exc}")
        if response.is_success:
            return SendResult.sent()
        error = f"HTTP {response.status_code}"
        if response.status_code in RETRYABLE_STATUS:
            return SendResult.retry(error, parse_retry_after(response.headers.get("Retry-After")))
        return SendResult.fail(error)
