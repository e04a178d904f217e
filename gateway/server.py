"""The HTTP application of a running gateway: API, accounts, and the web console."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI

from gateway.api.app import create_app
from gateway.auth.runtime import accounts_for
from gateway.runtime import Gateway
from gateway.web import WebConsole


async def build_app(gateway: Gateway) -> FastAPI:
    """Everything a browser or an integration talks to, behind one login."""
    config = gateway.config
    auth = await asyncio.to_thread(
        accounts_for, gateway.engine, config, lambda: gateway.incidents.grid
    )
    web = WebConsole(gateway, gateway.incidents)
    app = create_app(
        gateway,
        extra_routers=[*gateway.routers, web.api_router],
        auth=auth,
        cors_origins=config.auth.cors_origins,
    )
    app.include_router(web.pages_router)  # not behind the API login: it holds the sign-in page
    for router in gateway.device_routers:  # GA/T 1400, ISAPI push: their own device auth
        app.include_router(router)
    app.state.rules = gateway.rules
    return app
