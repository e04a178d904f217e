"""The HTTP application of a running gateway: API, accounts, and the web console, and the
options of the HTTP server that serves it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import uvicorn
from fastapi import Depends, FastAPI

from gateway.api.app import create_app
from gateway.api.storable import storable_input
from gateway.auth.runtime import AuthHousekeeping, accounts_for, push_security_alert
from gateway.auth.service import AuthService
from gateway.config.settings import ApiConfig
from gateway.runtime import Gateway
from gateway.web import WebConsole


async def build_app(gateway: Gateway) -> FastAPI:
    """Everything a browser or an integration talks to, behind one login."""
    config = gateway.config
    auth = await asyncio.to_thread(
        accounts_for, gateway.engine, config, lambda: gateway.incidents.grid
    )
    auth.signin.on_alert = partial(push_security_alert, gateway.incidents.hub)
    web = WebConsole(gateway, gateway.incidents)
    app = create_app(
        gateway,
        extra_routers=[*gateway.routers, web.api_router],
        auth=auth,
        cors_origins=config.auth.cors_origins,
        trusted_proxies=config.api.trusted_proxies,
    )
    # not behind the API login (it holds the sign-in page); unstorable text refused alike
    app.include_router(web.pages_router, dependencies=[Depends(storable_input)])
    for router in gateway.device_routers:  # GA/T 1400, ISAPI push: their own device auth
        app.include_router(router)
    app.state.rules = gateway.rules
    app.router.lifespan_context = partial(_housekeeping, auth, config.audit.checkpoint_log_s)
    return app


@asynccontextmanager
async def _housekeeping(auth: AuthService, log_every_s: float, _app: object) -> AsyncIterator[None]:
    """While the server runs: failed sign-ins aggregated and the audit head checkpointed
    to the log in the background; everything pending written when it stops."""
    job = AuthHousekeeping(auth, log_every_s=log_every_s)
    job.start()
    try:
        yield
    finally:
        await job.stop()


def uvicorn_config(app: Any, api: ApiConfig, **options: Any) -> uvicorn.Config:
    """The server's options. uvicorn's own proxy-header handling is off: by default it
    believes ``X-Forwarded-For`` from 127.0.0.1, so any local client could choose its
    address. ``create_app`` believes only the configured ``api.trusted_proxies``."""
    settings: dict[str, Any] = {"log_level": "warning", "lifespan": "on", **options}
    return uvicorn.Config(
        app,
        host=api.host,
        port=api.port,
        proxy_headers=False,
        forwarded_allow_ips="",
        server_header=False,
        **settings,
    )
