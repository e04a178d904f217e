"""A gateway API with real accounts over the demo grid: one account per role (scoped so
each has an own and an other object), incidents in different cells and compounds, devices
and events in two compounds, and a bearer token per account."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import func, insert, select

from gateway.api.app import create_app
from gateway.api.routes.rules import router as rules_router
from gateway.audit.chain import AuditLog
from gateway.auth.config import AuthConfig
from gateway.auth.roles import AccountRole
from gateway.auth.service import CLI, AuthService
from gateway.evidence import routes as evidence_routes
from gateway.evidence.store import EvidenceStore
from gateway.health import BrokerHealth, HealthReport
from gateway.incidents.categories import IncidentCategory, Severity, Source
from gateway.incidents.runtime import IncidentsRuntime
from gateway.incidents.service import Report
from gateway.storage.db import make_engine
from gateway.storage.tables import devices, events
from tests.incidents.helpers import FakeClock, runtime
from tests.support.incidents_app import ROUTERS

AUDIT_KEY = b"test-audit-key"
T = datetime(2026, 5, 12, 2, 0, tzinfo=UTC)

# username → (role, scopes, household)
ACCOUNTS: dict[str, tuple[AccountRole, dict[str, list[str]], str | None]] = {
    "w1": (AccountRole.GRID_WORKER, {"cells": ["shifan-01"]}, None),
    "h2": (AccountRole.GRID_HEAD, {"cells": ["shifan-02"]}, None),
    "desk1": (AccountRole.POLICE_DESK, {"beats": ["beat-taiping-1"]}, None),
    "cp2": (AccountRole.COMMUNITY_POLICE, {"beats": ["beat-taiping-2"]}, None),
    "pm": (AccountRole.PROPERTY_MANAGER, {"sites": ["demo-compound"]}, None),
    "res1": (AccountRole.RESIDENT, {}, "1-1-101"),
    "cmd": (AccountRole.COMMAND_OPERATOR, {}, None),
    "admin": (AccountRole.ADMINISTRATOR, {}, None),
    "integ": (AccountRole.INTEGRATOR, {}, None),
}


class _Stub:
    def __init__(self, r: IncidentsRuntime) -> None:
        self.engine = r.engine
        self.bus = r.bus

    def health(self) -> HealthReport:
        return HealthReport(broker=BrokerHealth(connected=True, host="127.0.0.1", port=1883))


@dataclass
class World:
    app: FastAPI
    client: httpx.AsyncClient
    auth: AuthService
    rt: IncidentsRuntime
    tokens: dict[str, str] = field(default_factory=dict)
    incidents: dict[str, int] = field(default_factory=dict)
    evidence: EvidenceStore | None = None

    def notification_of(self, incident_id: int) -> int:
        from gateway.notify.tables import notifications

        n = notifications.c
        with self.rt.engine.connect() as conn:
            found = conn.execute(
                select(func.min(n.id)).where(n.incident_id == incident_id)
            ).scalar()
        assert found is not None, f"incident {incident_id} has no notification"
        return int(found)

    def as_(self, user: str | None) -> dict[str, str]:
        return {} if user is None else {"Authorization": f"Bearer {self.tokens[user]}"}


def _seed_devices(r: IncidentsRuntime) -> None:
    dev = {"kind": "gate", "name": "", "registered": True}
    ev = {"kind": "gate", "type": "plate_read", "occurred_at": T, "received_at": T}
    with r.engine.begin() as conn:
        conn.execute(
            insert(devices),
            [
                {"id": "d-own", "site": "demo-compound", **dev},
                {"id": "d-other", "site": "far", **dev},
            ],
        )
        conn.execute(
            insert(events),
            [
                {"event_id": "e-own", "site": "demo-compound", "device_id": "d-own",
                 "attributes": {"plate": "浙A12345"}, "raw": '{"plate": "浙A12345"}', **ev},
                {"event_id": "e-other", "site": "far", "device_id": "d-other",
                 "attributes": {"plate": "浙B54321"}, "raw": "", **ev},
            ],
        )  # fmt: skip


async def _incident(r: IncidentsRuntime, reporter: str, **where: Any) -> int:
    return await r.service.report(
        Report(
            source=Source.MANUAL,
            category=IncidentCategory.OTHER,
            severity=Severity.P3,
            title_zh="测试",
            reporter=reporter,
            **where,
        )
    )


async def make_world(tmp_path: Path, database_url: str | None = None) -> AsyncIterator[World]:
    """The world on SQLite in ``tmp_path``, or on the database at ``database_url``."""
    engine = make_engine(database_url) if database_url is not None else None
    r = runtime(tmp_path, FakeClock(), engine=engine)
    await r.start()
    audit = AuditLog(r.engine, AUDIT_KEY)
    auth = AuthService(r.engine, audit, AuthConfig(login_rate="1000/minute"), grid=lambda: r.grid)
    evidence = EvidenceStore(tmp_path / "evidence")
    routers = [
        *ROUTERS,
        rules_router,
        evidence_routes.router,
    ]
    app = create_app(_Stub(r), extra_routers=routers, auth=auth)  # type: ignore[arg-type]
    app.state.incidents = r
    app.state.evidence = evidence
    _seed_devices(r)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        w = World(app, client, auth, r, evidence=evidence)
        for name, (role, scopes, household) in ACCOUNTS.items():
            user = auth.create_user(name, None, role, CLI, scopes=scopes, household_id=household)
            w.tokens[name], _ = auth.create_token(user["id"], "matrix", CLI)
        w.incidents = {
            "cell1": await _incident(r, "someone", site="demo-compound", cell="shifan-01"),
            "b6": await _incident(r, "someone", site="demo-compound", cell="shifan-02-b6"),
            "far": await _incident(r, "someone", site="far"),
            "res1": await _incident(r, "res1", site="demo-compound", cell="shifan-01"),
        }
        try:
            yield w
        finally:
            await r.stop()
            if engine is not None:
                engine.dispose()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """A fresh world per test (for tests that change accounts or the audit log)."""
    async for w in make_world(tmp_path):
        yield w


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    """One world for a whole module of read-mostly checks (the matrix)."""
    async for w in make_world(tmp_path_factory.mktemp("world")):
        yield w
