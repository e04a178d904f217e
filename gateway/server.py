"""The HTTP application of a running gateway: API, accounts, and the web console, and the
options of the HTTP server that serves it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import uvicorn
from fastapi import APIRouter, Depends, FastAPI

from gateway.api.app import create_app
from gateway.api.routes import config_reload, device_edits
from gateway.api.routes.rules import router as rules_router
from gateway.api.storable import storable_input
from gateway.auth.runtime import AuthHousekeeping, accounts_for, push_security_alert
from gateway.auth.service import AuthService
from gateway.config.settings import ApiConfig
from gateway.evidence import routes as evidence_routes
from gateway.grid import routes as grid_routes
from gateway.incidents import routes as incidents_routes
from gateway.live import routes as live_routes
from gateway.receivers.gat1400 import routes as gat1400_routes
from gateway.receivers.isapi import routes as isapi_routes
from gateway.runtime import Gateway
from gateway.watch import routes as watch_routes
from gateway.watch.service import Wire
from gateway.web import WebContext
from gateway.web import routes as web_routes


def api_routers(gateway: Gateway) -> list[APIRouter]:
    """The routers of the parts beyond the core API (rules, cameras, incidents, grid, device
    edits, config reload), mounted behind the login."""
    return [
        rules_router,
        evidence_routes.router,
        live_routes.router,
        *incidents_routes.routers,
        grid_routes.router,
        device_edits.router,
        config_reload.router,
    ]


def device_routers(gateway: Gateway) -> list[APIRouter]:
    """Routers devices call (GA/T 1400, ISAPI push): mounted without the API's login, each
    behind its own device authentication, when its receiver is on."""
    running = ((gat1400_routes.router, gateway.gat1400), (isapi_routes.router, gateway.isapi))
    return [router for router, service in running if service is not None]


async def build_app(gateway: Gateway) -> FastAPI:
    """Everything a browser or an integration talks to, behind one login."""
    config = gateway.config
    auth = await asyncio.to_thread(
        accounts_for, gateway.engine, config, lambda: gateway.incidents.grid
    )
    auth.signin.on_alert = partial(push_security_alert, gateway.incidents.hub)
    wire = Wire.of(gateway)
    app = create_app(
        gateway,
        extra_routers=[*api_routers(gateway), *web_routes.api_routers, watch_routes.router],
        auth=auth,
        cors_origins=config.auth.cors_origins,
        trusted_proxies=config.api.trusted_proxies,
    )
    # not behind the API login (it holds the sign-in page); unstorable text refused alike
    app.include_router(web_routes.pages_router, dependencies=[Depends(storable_input)])
    for router in device_routers(gateway):  # GA/T 1400, ISAPI push: their own device auth
        app.include_router(router)
    # what the routes read of the running gateway (each routes module says which)
    app.state.rules = gateway.rules
    app.state.incidents = gateway.incidents  # incidents, alarms, notifications, stats, grid
    app.state.web = WebContext(gateway, gateway.incidents)  # the console
    app.state.evidence = gateway.cameras.store
    app.state.live = gateway.cameras.live
    app.state.gat1400 = gateway.gat1400  # device endpoints (None: the receiver is off)
    app.state.isapi = gateway.isapi
    app.state.devices = gateway  # device edits (gateway/api/routes/device_edits.py)
    app.state.reloader = gateway.reloader
    app.state.wire = wire  # the watch routes (gateway/watch/routes.py)
    app.router.lifespan_context = partial(_housekeeping, auth, wire, config.audit.checkpoint_log_s)
    return app


@asynccontextmanager
async def _housekeeping(
    auth: AuthService, wire: Wire, log_every_s: float, _app: object
) -> AsyncIterator[None]:
    """While the server runs: failed sign-ins aggregated and the audit head checkpointed
    to the log in the background; everything pending written when it stops, and topic
    watches still running ended."""
    job = AuthHousekeeping(auth, log_every_s=log_every_s)
    job.start()
    try:
        yield
    finally:
        await job.stop()
        await asyncio.to_thread(wire.watches.close)


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
