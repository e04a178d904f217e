"""Modules import on their own, in a fresh interpreter, whatever was imported before: an
import cycle shows only when a module of the cycle is the first one imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

FIRST = [
    "gateway.auth.guards",  # imported gateway.api, whose app imported the guards again
    "gateway.api.deps",
    "gateway.incidents.api",
    "gateway.grid.api",
    "gateway.runtime",
]


@pytest.mark.parametrize("module", FIRST)
def test_module_imports_first(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
