"""Tests of other parts run the API as a trusted caller; the accounts tests
(tests/auth/) exercise the real authentication."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.api.deps import get_current_principal
from gateway.auth.principal import ALL, EVERYTHING, Principal

TRUSTED = Principal("tester", frozenset({ALL}), role="administrator", scope=EVERYTHING)


def trusted(app: FastAPI, principal: Principal = TRUSTED) -> FastAPI:
    """Every call is made by ``principal`` (all permissions, whole grid by default)."""
    app.dependency_overrides[get_current_principal] = lambda: principal
    return app
