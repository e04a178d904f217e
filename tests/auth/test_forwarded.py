"""X-Forwarded-For is believed only from configured proxies. Served by uvicorn as the
gateway serves it (``gateway.server.uvicorn_config``) on a free loopback port: a local
client varying the header still meets the per-address login limit, and audit rows carry
the real peer; with 127.0.0.1 named as a proxy, the forwarded address is the client's."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from gateway.api.app import create_app
from gateway.audit.tables import audit_log
from gateway.config.settings import ApiConfig
from gateway.server import uvicorn_config
from tests.auth.conftest import World, _Stub, make_world
from tests.support.auth import cheap_argon2
from tests.support.brokers import free_port
from tests.support.incidents_app import ROUTERS, with_incidents


@pytest.fixture(autouse=True)
def _cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_argon2(monkeypatch)


@asynccontextmanager
async def served(w: World, trusted: list[str]) -> AsyncIterator[httpx.AsyncClient]:
    app = with_incidents(
        create_app(_Stub(w.rt), extra_routers=ROUTERS, auth=w.auth, trusted_proxies=trusted), w.rt
    )  # type: ignore[arg-type]
    api = ApiConfig(host="127.0.0.1", port=free_port(), trusted_proxies=trusted)
    import uvicorn

    server = uvicorn.Server(uvicorn_config(app, api, lifespan="off"))
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not task.done(), "the server did not start"
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api.port}") as client:
            yield client
    finally:
        server.should_exit = True
        await task


def _login_sources(w: World) -> list[str]:
    with w.rt.engine.connect() as conn:
        rows = conn.execute(
            select(audit_log.c.source_ip).where(audit_log.c.action.like("auth.login%"))
        ).scalars()
        return list(rows)


async def _attempts(client: httpx.AsyncClient, n: int, forged: bool) -> list[int]:
    codes = []
    for i in range(n):
        headers = {"X-Forwarded-For": f"203.0.113.{i + 1}"} if forged else {}
        r = await client.post(
            "/api/auth/login",
            json={"username": f"nobody{i}", "password": "x" * 12},
            headers=headers,
        )
        codes.append(r.status_code)
    return codes


async def test_forwarded_for_is_not_believed_by_default(tmp_path: Path) -> None:
    async for w in make_world(tmp_path):
        w.auth.config = w.auth.config.model_copy(update={"login_rate": "5/minute"})
        async with served(w, []) as client:
            codes = await _attempts(client, 12, forged=True)
        assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}, codes
        w.auth.flush_failed_logins(force=True)
        assert set(_login_sources(w)) == {"127.0.0.1"}


async def test_forwarded_for_is_believed_from_a_configured_proxy(tmp_path: Path) -> None:
    async for w in make_world(tmp_path):
        w.auth.config = w.auth.config.model_copy(update={"login_rate": "5/minute"})
        async with served(w, ["127.0.0.0/8"]) as client:
            codes = await _attempts(client, 12, forged=True)  # each its own client behind it
            assert set(codes) == {401}, codes
            me = await client.get("/api/auth/me")  # any route: the proxy's own address
            assert me.status_code == 401
        w.auth.flush_failed_logins(force=True)
        assert set(_login_sources(w)) == {f"203.0.113.{i + 1}" for i in range(12)}
