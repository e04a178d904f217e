"""/api/rules on a tiny FastAPI app holding a RulesService."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from rules_helpers import DEFAULT_RULES, T0, ev

from gateway.api.routes.rules import router
from rules.service import RulesService
from tests.support.auth import trusted


@pytest.fixture
def setup(tmp_path: Path) -> tuple[TestClient, RulesService, Path]:
    rule_dir = tmp_path / "rules"
    shutil.copytree(DEFAULT_RULES, rule_dir)
    service = RulesService(rule_dir, clock=lambda: T0, watch_every_s=0)
    app = FastAPI()
    app.include_router(router)
    app.state.rules = service
    return TestClient(trusted(app)), service, rule_dir


async def test_list_shows_state_and_last_firing(
    setup: tuple[TestClient, RulesService, Path],
) -> None:
    client, service, _ = setup
    await service.handle(ev("door_forced_open", 0, "d1", door="A"))
    body = client.get("/api/rules").json()
    rules = {r["id"]: r for r in body["rules"]}
    assert len(rules) == 16
    forced = rules["door_forced_open"]
    assert forced["enabled"] and forced["fired"] == 1 and forced["active_signals"] == 1
    assert forced["last_fired_at"] == "2025-01-06T12:00:00Z"
    assert forced["last_signal_id"].startswith("door_forced_open:")
    assert body["counters"]["events"] == 1
    assert client.get("/api/rules/door_forced_open").json()["fired"] == 1
    assert client.get("/api/rules/nope").status_code == 404


async def test_enable_disable(setup: tuple[TestClient, RulesService, Path]) -> None:
    client, service, _ = setup
    assert client.post("/api/rules/door_forced_open/disable").json()["enabled"] is False
    assert await service.handle(ev("door_forced_open", 0, "d1", door="A")) == []
    assert client.post("/api/rules/door_forced_open/enable").json()["enabled"] is True
    assert len(await service.handle(ev("door_forced_open", 1, "d1", door="A"))) == 1
    assert client.post("/api/rules/nope/enable").status_code == 404


def test_reload_ok_and_broken(setup: tuple[TestClient, RulesService, Path]) -> None:
    client, _, rule_dir = setup
    ok = client.post("/api/rules/reload")
    assert ok.status_code == 200 and ok.json() == {"ok": True, "rules": 16, "errors": []}
    (rule_dir / "x.yaml").write_text("rules:\n  - id: x\n    severity: PX\n", encoding="utf-8")
    bad = client.post("/api/rules/reload")
    assert bad.status_code == 422
    body = bad.json()
    assert body["ok"] is False and body["rules"] == 16
    assert {"file", "rule_id", "key_path", "message"} <= set(body["errors"][0])
    assert any(e["rule_id"] == "x" and e["key_path"] == "rules[0].severity" for e in body["errors"])
    assert client.get("/api/rules").json()["last_reload_errors"]


def test_no_service_is_503() -> None:
    app = FastAPI()
    app.include_router(router)
    assert TestClient(trusted(app)).get("/api/rules").status_code == 503
