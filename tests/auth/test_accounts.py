"""Login, session cookie, bearer tokens, scoped and revocable API tokens, rate limits,
secure headers, the first administrator, and the users CLI (throttling of failed sign-ins:
test_throttle.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from gateway.audit.tables import audit_log
from gateway.auth.passwords import hash_password, verify_password
from gateway.auth.roles import AccountRole
from gateway.auth.service import CLI
from tests.auth.conftest import World

PASSWORD = "correct horse battery"


def _make(world: World, name: str = "zhao", role: AccountRole = AccountRole.GRID_WORKER) -> str:
    user = world.auth.create_user(name, PASSWORD, role, CLI, scopes={"cells": ["shifan-01"]})
    return str(user["id"])


def test_argon2_hashes() -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert verify_password(stored, PASSWORD) and not verify_password(stored, "wrong")
    assert not verify_password(None, PASSWORD)


async def test_login_cookie_and_bearer_logout(world: World) -> None:
    _make(world)
    c = world.client
    r = await c.post("/api/auth/login", json={"username": "Zhao", "password": PASSWORD})
    assert r.status_code == 200, r.text
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" in cookie
    assert r.headers["cache-control"] == "no-store"
    token = r.json()["token"]
    assert "password" not in r.text
    me = await c.get("/api/auth/me", headers={"Cookie": f"lianfang_session={token}"})
    assert me.json()["role"] == "grid_worker" and me.json()["via"] == "session"
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await c.get("/api/incidents", headers=bearer)).status_code == 200
    assert (await c.post("/api/auth/logout", headers=bearer)).status_code == 204
    assert (await c.get("/api/incidents", headers=bearer)).status_code == 401


async def test_wrong_password_and_unknown_user_look_alike(world: World) -> None:
    _make(world)
    a = await world.client.post("/api/auth/login", json={"username": "zhao", "password": "nope"})
    b = await world.client.post("/api/auth/login", json={"username": "nobody", "password": "x"})
    assert a.status_code == b.status_code == 401
    assert a.json() == b.json()


async def test_login_is_rate_limited_per_address(world: World) -> None:
    world.auth.config = world.auth.config.model_copy(update={"login_rate": "3/minute"})
    codes = [
        (
            await world.client.post("/api/auth/login", json={"username": "a", "password": "b"})
        ).status_code
        for _ in range(4)
    ]
    assert codes == [401, 401, 401, 429]


async def test_alarm_rate_limit(world: World) -> None:
    world.auth.config = world.auth.config.model_copy(update={"alarm_rate": "2/minute"})
    h = world.as_("res1")
    codes = [
        (await world.client.post("/api/alarms", json={}, headers=h)).status_code for _ in range(3)
    ]
    assert codes == [201, 201, 429]


async def test_api_tokens_are_scoped_and_revocable(world: World) -> None:
    c = world.client
    admin = world.as_("admin")
    integ_id = _make(world, "vendor", AccountRole.INTEGRATOR)
    login = await c.post("/api/auth/login", json={"username": "vendor", "password": PASSWORD})
    session = {"Authorization": f"Bearer {login.json()['token']}"}
    # an integrator makes itself a read-only token for one job
    r = await c.post(
        "/api/auth/tokens",
        json={"name": "vendor-x", "permissions": ["devices:read"]},
        headers=session,
    )
    assert r.status_code == 201, r.text
    token = {"Authorization": f"Bearer {r.json()['token']}"}
    assert (await c.get("/api/devices", headers=token)).status_code == 200
    assert (await c.get("/api/quarantine", headers=token)).status_code == 403  # not in the token
    # beyond the role: refused
    r2 = await c.post(
        "/api/auth/tokens", json={"name": "x", "permissions": ["users:manage"]},
        headers=session,
    )  # fmt: skip
    assert r2.status_code == 422
    # a token cannot mint tokens; sessions can
    assert (await c.post("/api/auth/tokens", json={"name": "y"}, headers=token)).status_code == 403
    tokens = (await c.get(f"/api/users/{integ_id}/tokens", headers=admin)).json()
    assert all("secret" not in t for t in tokens)
    assert (await c.delete(f"/api/auth/tokens/{r.json()['id']}", headers=admin)).status_code == 204
    assert (await c.get("/api/devices", headers=token)).status_code == 401
    assert (
        await c.get("/api/devices", headers={"Authorization": "Bearer lft_x_y"})
    ).status_code == 401


async def test_disabled_account_and_expired_token(world: World) -> None:
    user_id = _make(world)
    secret, _ = world.auth.create_token(
        user_id, "old", CLI, expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    assert (
        await world.client.get("/api/incidents", headers={"Authorization": f"Bearer {secret}"})
    ).status_code == 401
    secret, _ = world.auth.create_token(user_id, "new", CLI)
    bearer = {"Authorization": f"Bearer {secret}"}
    assert (await world.client.get("/api/incidents", headers=bearer)).status_code == 200
    r = await world.client.patch(
        f"/api/users/{user_id}", json={"active": False}, headers=world.as_("admin")
    )
    assert r.status_code == 200 and r.json()["active"] is False
    assert (await world.client.get("/api/incidents", headers=bearer)).status_code == 401
    with world.rt.engine.connect() as conn:
        row = conn.execute(select(audit_log).where(audit_log.c.action == "user.update")).one()
    assert row.before["active"] is True and row.after["active"] is False


async def test_users_api_validates(world: World) -> None:
    admin = world.as_("admin")
    short = {"username": "li", "password": "short", "role": "grid_worker"}
    assert (await world.client.post("/api/users", json=short, headers=admin)).status_code == 422
    resident = {"username": "li", "password": PASSWORD, "role": "resident"}
    assert (await world.client.post("/api/users", json=resident, headers=admin)).status_code == 422
    ok = {**resident, "household_id": "1-1-502"}
    r = await world.client.post("/api/users", json=ok, headers=admin)
    assert r.status_code == 201 and "password" not in r.text
    assert (await world.client.post("/api/users", json=ok, headers=admin)).status_code == 422


async def test_secure_headers_and_closed_cors(world: World) -> None:
    r = await world.client.get(
        "/api/incidents", headers={**world.as_("cmd"), "Origin": "https://evil.example"}
    )
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert "access-control-allow-origin" not in r.headers
    pre = await world.client.options(
        "/api/incidents",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in pre.headers


def test_first_admin_from_the_environment(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIANFANG_ADMIN_USER", "root")
    monkeypatch.setenv("LIANFANG_ADMIN_PASSWORD", PASSWORD)
    assert world.auth.bootstrap_admin_from_env() is None  # accounts exist already: no-op


def test_users_cli(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    from gateway.cli.users_cmd import app

    db = f"sqlite:///{Path(str(tmp_path)) / 'cli.db'}"
    monkeypatch.setenv("LIANFANG_AUDIT_KEY", "k")
    monkeypatch.setenv("LIANFANG_ADMIN_PASSWORD", PASSWORD)
    run = CliRunner().invoke
    r = run(app, ["create-admin", "boss", "--database", db])
    assert r.exit_code == 0, r.output
    r = run(app, ["create", "vendor", "--role", "integrator", "--no-password", "--database", db])
    assert r.exit_code == 0, r.output
    r = run(
        app, ["token", "vendor", "--name", "x", "--permission", "devices:read", "--database", db]
    )
    assert r.exit_code == 0 and "lft_" in r.output
    r = run(app, ["list", "--database", db])
    assert "boss" in r.output and "administrator" in r.output and PASSWORD not in r.output
    r = run(app, ["create-admin", "boss", "--database", db])
    assert r.exit_code == 1
