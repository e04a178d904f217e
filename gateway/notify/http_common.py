"""What the HTTP notifiers (webhook, HTTP SMS gateway) share: how a POST's outcome becomes a
``SendResult``, ``Retry-After`` and secrets from the environment.

Timeouts, connection errors, 408, 425, 429 and 500/502/503/504 are worth retrying (the
dispatcher backs off and honours ``Retry-After``); any other non-2xx answer is permanent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from gateway.config.errors import ConfigError, ConfigErrors
from gateway.notify.base import SendResult

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER_S = 3600.0


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


def env_secret(name: str, key_path: str) -> str:
    """The value of environment variable ``name``; a ``ConfigErrors`` naming ``key_path``
    (the configuration key that names the variable) when it is not set."""
    value = os.environ.get(name)
    if value is None:
        raise ConfigErrors(
            [ConfigError("<env>", key_path, f"environment variable {name} is not set")]
        )
    return value


def response_result(response: httpx.Response) -> SendResult:
    """2xx: sent; a retryable status: retry (with its ``Retry-After``); else permanent."""
    if response.is_success:
        return SendResult.sent()
    error = f"HTTP {response.status_code}"
    if response.status_code in RETRYABLE_STATUS:
        return SendResult.retry(error, parse_retry_after(response.headers.get("Retry-After")))
    return SendResult.fail(error)


async def post(
    client: httpx.AsyncClient,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    timeout_s: float,
) -> SendResult:
    """POST ``content`` and classify the outcome; never raises for delivery problems."""
    try:
        response = await client.post(url, content=content, headers=dict(headers))
    except httpx.TimeoutException:
        return SendResult.retry(f"timed out after {timeout_s:g}s")
    except httpx.TransportError as exc:
        return SendResult.retry(f"{type(exc).__name__}: {exc}")
    return response_result(response)
