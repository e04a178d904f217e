"""``HttpSmsDriver``: SMS and voice through a generic HTTP SMS gateway.

For each message: the recipient (``person/<id>``, a grid person) is read from the grid and
their number decrypted (``gateway.grid.store.person_row`` + ``person_phone``); an audit row
records who was sent what (person, mode, notification, gateway host — never the number)
*before* the number leaves the gateway, as for the phone reveal routes: no audit row, no
send; then one JSON POST built from the configured template (``gateway.notify.template``).

Outcomes, as for webhooks (``gateway.notify.http_common``): 2xx sent; timeouts, connection
errors, 408/425/429/5xx retried with the dispatcher's backoff (``Retry-After`` honoured);
other 4xx permanent. A recipient that is not a grid person, a person without a number and
a number that cannot be decrypted (wrong key, altered value) are permanent failures with
the reason; nothing here raises into the dispatcher.

Logs and delivery records name the person id and the masked number (``*******0021``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from gateway.audit.chain import AuditEntry, AuditLog
from gateway.config.errors import ConfigError, ConfigErrors
from gateway.config.settings import HttpSmsConfig
from gateway.grid.store import person_phone, person_row
from gateway.notify.base import Message, SendResult
from gateway.notify.http_common import env_secret, post
from gateway.notify.policy import RetryPolicy
from gateway.notify.sms import Mode
from gateway.notify.template import render

log = logging.getLogger(__name__)

KEY = "sms.http"  # configuration key path, for errors
AUDIT_ACTION = {"sms": "SMS send", "voice": "voice call"}


def _tls(config: HttpSmsConfig) -> ssl.SSLContext | bool:
    if not config.tls_verify:
        return False
    if config.ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(config.ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigErrors(
            [ConfigError(str(config.ca_file), f"{KEY}.ca_file", f"cannot load CA file: {exc}")]
        ) from exc


def _auth(config: HttpSmsConfig) -> dict[str, str]:
    if config.auth_env is None:
        return {}
    secret = env_secret(config.auth_env, f"{KEY}.auth_env").strip()
    if not secret or any(c in secret for c in "\r\n\0"):
        raise ConfigErrors(
            [
                ConfigError(
                    "<env>",
                    f"{KEY}.auth_env",
                    f"environment variable {config.auth_env} is empty or holds a line break",
                )
            ]
        )
    value = f"{config.auth_scheme} {secret}" if config.auth_scheme else secret
    return {config.auth_header or "Authorization": value}


class HttpSmsDriver:
    """Args:
    config: the ``sms.http`` section of ``lianfang.yaml``.
    engine: the gateway's database (the grid's people).
    audit: where each send that decrypted a number is recorded.
    transport: an httpx transport (tests)."""

    def __init__(
        self,
        config: HttpSmsConfig,
        engine: Engine,
        audit: AuditLog,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.audit = audit
        self.policy = RetryPolicy(config.max_attempts, config.backoff_s, config.backoff_max_s)
        self._headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "lianfang-gateway",
            **_auth(config),  # ConfigErrors now, at start-up, not at the first alarm
        }
        self._verify = _tls(config)
        parts = urlsplit(config.url)
        self.host = parts.netloc  # for logs and audit rows
        if parts.scheme == "http" and parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            log.warning(
                "SMS gateway %s is plain http: numbers and texts cross the network unencrypted",
                self.host,
            )
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def start(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.config.timeout_s,
                verify=self._verify,
                transport=self._transport,
                follow_redirects=False,
                trust_env=False,  # no proxy from the environment: the number goes where configured
            )

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def deliver(
        self, mode: Mode, recipient: str, text: str, *, message: Message | None = None
    ) -> SendResult:
        try:
            return await self._deliver(mode, recipient, text, message)
        except Exception as exc:  # never the exception's text: it could quote the body
            log.error("%s to %s: unexpected %s", mode, recipient, type(exc).__name__)
            return SendResult.retry(f"unexpected {type(exc).__name__} in the SMS driver")

    async def _deliver(
        self, mode: Mode, recipient: str, text: str, message: Message | None
    ) -> SendResult:
        kind, _, person_id = recipient.partition("/")
        if kind != "person" or not person_id:
            return SendResult.fail(
                f"{recipient} has no phone number: only grid people are reached by {mode}"
            )
        try:
            row = await asyncio.to_thread(person_row, self.engine, person_id)
        except SQLAlchemyError as exc:
            return SendResult.retry(f"grid lookup failed: {type(exc).__name__}")
        if row is None:
            return SendResult.fail(f"no grid person {person_id} (removed from the grid?)")
        found = person_phone(row)  # logs a decryption failure (never the number)
        masked = found.get("phone_masked") or ""
        if found.get("phone_masked") is None:
            return SendResult.fail(f"person {person_id} has no phone number")
        if found["phone"] is None:
            return SendResult.fail(
                f"phone number of person {person_id} cannot be decrypted: {found['phone_error']}"
            )
        entry = AuditEntry(
            actor="gateway",
            action=AUDIT_ACTION[mode],
            target=recipient,
            after={
                "person": person_id,
                "mode": mode,
                "gateway": self.host,
                "notification_id": message.notification_id if message else None,
                "incident_id": message.incident_id if message else None,
            },
        )
        try:
            await asyncio.to_thread(self.audit.append, entry)
        except Exception as exc:
            log.error("%s to %s: audit row not written (%s): not sent", mode, recipient, exc)
            return SendResult.retry(f"audit row not written ({type(exc).__name__}): not sent")
        body = render(
            self.config.body,
            {
                "phone": found["phone"],
                "text": text,
                "mode": mode,
                "recipient": person_id,
                "notification_id": message.notification_id if message else 0,
                "incident_id": message.incident_id if message else 0,
            },
        )
        content = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        headers = dict(self._headers)
        if message is not None:
            headers["X-Lianfang-Notification"] = str(message.notification_id)
        await self.start()
        assert self._client is not None
        result = await post(
            self._client,
            self.config.url,
            content=content,
            headers=headers,
            timeout_s=self.config.timeout_s,
        )
        if result.ok:
            log.info("%s to %s (%s) via %s: sent", mode, recipient, masked, self.host)
        else:
            log.warning(
                "%s to %s (%s) via %s: %s%s",
                mode,
                recipient,
                masked,
                self.host,
                result.error,
                " (will retry)" if result.retryable else "",
            )
        return result
