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


def test_runtime_never_imports_the_demo() -> None:
    """Demo-only code (simulator, simulated cameras, embedded broker) stays out of the runtime:
    only the CLI, which starts the demo, may import ``gateway.demo``."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "gateway"
    offenders = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if not path.is_relative_to(root / "demo")
        and not path.is_relative_to(root / "cli")
        and "gateway.demo" in path.read_text(encoding="utf-8")
    ]
    assert offenders == []
