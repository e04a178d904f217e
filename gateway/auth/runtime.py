"""Accounts for a running gateway: the audit log, the accounts service, the first
administrator from the environment, and the retention job.

``create_app`` builds one by itself for a ``Gateway`` (anything with a ``GatewayConfig`` as
``config`` and an ``engine``) when none is passed, so no API is ever served without
authentication.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gateway.audit.chain import AuditLog, load_audit_key
from gateway.auth.service import AuthService
from gateway.config.settings import GatewayConfig
from gateway.grid.directory import GridDirectory

log = logging.getLogger(__name__)


def accounts_for(
    engine: Any, config: GatewayConfig, grid: Callable[[], GridDirectory] | None = None
) -> AuthService:
    """The accounts service on the gateway's (migrated) database; creates the first
    administrator from ``LIANFANG_ADMIN_USER`` / ``LIANFANG_ADMIN_PASSWORD`` if there is
    no account yet."""
    audit = AuditLog(engine, load_audit_key(config.data_dir))
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
