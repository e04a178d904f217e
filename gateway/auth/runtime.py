"""Accounts for a running gateway: the audit log, the accounts service, the first
administrator from the environment, and the retention job.

``create_app`` builds one by itself for a ``Gateway`` (anything with a ``GatewayConfig`` as
``config`` and an ``engine``) when none is passed, so no API is ever served without
authentication.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from gateway.audit.chain import open_audit_log
from gateway.auth.service import AuthService
from gateway.auth.throttle import Alert
from gateway.config.settings import GatewayConfig
from gateway.grid.directory import GridDirectory
from gateway.notify.console import NotificationHub

log = logging.getLogger(__name__)


def accounts_for(
    engine: Any, config: GatewayConfig, grid: Callable[[], GridDirectory] | None = None
) -> AuthService:
    """The accounts service on the gateway's (migrated) database; creates the first
    administrator from ``LIANFANG_ADMIN_USER`` / ``LIANFANG_ADMIN_PASSWORD`` if there is
    no account yet."""
    audit = open_audit_log(engine, config.data_dir, config.audit)
    auth = AuthService(engine, audit, config.auth, grid=grid)
    auth.bootstrap_admin_from_env()
    if not auth.has_users():
        log.warning(
            "no accounts yet: create the first administrator with `lianfang users "
            "create-admin` or LIANFANG_ADMIN_USER / LIANFANG_ADMIN_PASSWORD"
        )
    return auth


def accounts_of_runtime(runtime: object) -> AuthService | None:
    """For ``create_app``: accounts when ``runtime`` is a configured gateway, else None."""
    config = getattr(runtime, "config", None)
    engine = getattr(runtime, "engine", None)
    if not isinstance(config, GatewayConfig) or engine is None:
        return None
    incidents = getattr(runtime, "incidents", None)
    grid = (lambda: incidents.grid) if incidents is not None else None
    return accounts_for(engine, config, grid)


def push_security_alert(hub: NotificationHub, alert: Alert) -> None:
    """A brute-force alert to the administrators' consoles (``role/administrator``)."""
    where = f"账户 {alert.key}" if alert.kind == "account" else f"地址 {alert.key}"
    hub.publish(
        {
            "type": "security_alert",
            "kind": f"bruteforce_{alert.kind}",
            "key": alert.key,
            "failures": alert.failures,
            "addresses": alert.addresses,
            "text_zh": f"疑似暴力破解：{where} 登录失败 {alert.failures} 次",
            "text_en": f"Possible brute force: {alert.failures} failed sign-ins for "
            f"{alert.kind} {alert.key}",
        },
        recipient="role/administrator",
    )


class AuthHousekeeping:
    """Background work of the accounts: the aggregated failed sign-ins are written when their
    interval ends (and at stop), and the audit log's head is checkpointed."""

    def __init__(self, auth: AuthService, every_s: float = 30.0, log_every_s: float = 60.0) -> None:
        self.auth = auth
        self.every_s = min(every_s, log_every_s)
        self.log_every_s = log_every_s
        self._next_log = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="auth-housekeeping")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await asyncio.to_thread(self.tick)
            except Exception:  # a database hiccup must not end the job
                log.exception("accounts housekeeping failed; trying again")

    def tick(self, *, final: bool = False) -> None:
        self.auth.flush_failed_logins(force=final)
        if final or time.monotonic() >= self._next_log:
            self._next_log = time.monotonic() + self.log_every_s
            self.auth.audit.checkpoint_to_log()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self.tick, final=True)
