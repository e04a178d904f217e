"""Tests of other parts run the API as a trusted caller; the accounts tests
(tests/auth/) exercise the real authentication."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from gateway.api.deps import get_current_principal
from gateway.auth.principal import ALL, EVERYTHING, Principal

TRUSTED = Principal("tester", frozenset({ALL}), role="administrator", scope=EVERYTHING)


def trusted(app: FastAPI, principal: Principal = TRUSTED) -> FastAPI:
    """Every call is made by ``principal`` (all permissions, whole grid by default)."""
    app.dependency_overrides[get_current_principal] = lambda: principal
    return app


def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id with the smallest cost, for tests that sign in many times (the gateway's
    own cost is RFC 9106's low-memory profile, slow on purpose)."""
    from argon2 import PasswordHasher

    from gateway.auth import passwords

    hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    monkeypatch.setattr(passwords, "_hasher", hasher)
    monkeypatch.setattr(passwords, "_DUMMY", hasher.hash("lianfang-dummy-password-never-valid"))
