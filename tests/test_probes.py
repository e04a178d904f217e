"""``/healthz`` and ``/readyz`` (issue 16 part 6): answered without login, 200 or 503, and
their bodies and headers say nothing about the deployment; ``/api/health`` and every other
route still need a login."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from gateway import __version__
from gateway.api import BrokerHealth, HealthReport, create_app
from gateway.bus import EventBus
from gateway.storage.db import make_engine, migrate


@dataclass
class Runtime:
    engine: Engine
    bus: EventBus = field(default_factory=EventBus)
    broker_connected: bool = True

    def health(self) -> HealthReport:
        return HealthReport(
            broker=BrokerHealth(connected=self.broker_connected, host="10.9.8.7", port=18830),
            lag_ms=1.0,
        )


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    eng = make_engine(f"sqlite:///{tmp_path / 'lianfang.db'}")
    migrate(eng)
    return eng


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def get(runtime: Runtime, path: str) -> httpx.Response:
    """``path`` without any credentials."""
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        return await c.get(path)


def assert_says_nothing(response: httpx.Response) -> None:
    text = response.text
    assert text in ("ok", "unavailable")
    for secret in (__version__, "10.9.8.7", "18830", "127.0.0.1", "sqlite", "postgres"):
        assert secret not in text
        assert all(secret not in v for v in response.headers.values())
    assert response.headers["cache-control"] == "no-store"


async def test_healthz_answers_200_without_login(engine: Engine) -> None:
    response = await get(Runtime(engine, broker_connected=False), "/healthz")
    assert (response.status_code, response.text) == (200, "ok")
    assert_says_nothing(response)


async def test_readyz_answers_200_when_database_and_broker_answer(engine: Engine) -> None:
    response = await get(Runtime(engine), "/readyz")
    assert (response.status_code, response.text) == (200, "ok")
    assert_says_nothing(response)


async def test_readyz_answers_503_when_the_database_is_down() -> None:
    down = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{closed_port()}/lianfang")
    try:
        response = await get(Runtime(down), "/readyz")
    finally:
        down.dispose()
    assert (response.status_code, response.text) == (503, "unavailable")
    assert_says_nothing(response)


async def test_readyz_answers_503_when_the_broker_is_not_connected(engine: Engine) -> None:
    response = await get(Runtime(engine, broker_connected=False), "/readyz")
    assert (response.status_code, response.text) == (503, "unavailable")
    assert_says_nothing(response)


async def test_api_health_still_needs_a_login(engine: Engine) -> None:
    response = await get(Runtime(engine), "/api/health")
    assert response.status_code == 401
    assert __version__ not in response.text


async def test_the_probes_are_the_only_routes_open_without_login(engine: Engine) -> None:
    """Every parameterless GET route answers 401 without credentials, but the two probes
    (and the OpenAPI schema, public as before)."""
    runtime = Runtime(engine)
    app = create_app(runtime)
    documented = app.openapi()["paths"]
    gets = sorted(p for p, ops in documented.items() if "get" in ops and "{" not in p)
    paths = [*gets, "/docs", "/healthz", "/readyz"]
    assert "/api/health" in paths and len(paths) > 10
    transport = httpx.ASGITransport(app=app)
    open_paths = []
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        for path in paths:
            if path.endswith("/stream"):
                continue  # an open stream would not end; its dependencies are the same seam
            if (await c.get(path)).status_code != 401:
                open_paths.append(path)
    assert open_paths == ["/healthz", "/readyz"]
