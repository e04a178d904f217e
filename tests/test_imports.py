"""Modules import on their own, in a fresh interpreter, whatever was imported before: an
import cycle shows only when a module of the cycle is the first one imported."""

from __future__ import annotations

import subprocess
import sys

import pytest

FIRST = [
    "gateway.auth.guards",  # imported gateway.api, whose app imported the guards again
    "gateway.api.deps",
    "gateway.incidents.routes",
    "gateway.grid.routes",
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


# The HTTP layer: the API and the console, the server and the CLI that assemble them, and
# each domain package's routes (``routes.py``) and FastAPI dependencies (``auth/guards.py``).
HTTP_LAYER = ("api/", "web/", "cli/", "server.py", "auth/guards.py")


def _is_http(rel: str) -> bool:
    return rel.startswith(HTTP_LAYER) or rel.endswith("/routes.py") or "/routes/" in rel


def test_domain_code_never_imports_the_http_layer() -> None:
    """Imports point down the layers: domain code (incidents, notify, storage, …) takes
    nothing from ``gateway.api`` or ``gateway.web``; only the HTTP layer does."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "gateway"
    offenders = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if _is_http(rel):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [
                f"{rel}:{node.lineno} {n}"
                for n in names
                if n.split(".")[:2] in (["gateway", "api"], ["gateway", "web"])
            ]
    assert offenders == []


def test_routes_are_module_level_not_built_by_functions() -> None:
    """One convention for the HTTP routes: module-level routers of small functions in
    ``routes.py`` (or ``routes/``), taking running parts from the app's state; no function
    builds a router around a context any more (those grew to hundreds of lines)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "gateway"
    builders = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            made = [
                n
                for n in ast.walk(fn)
                if isinstance(n, ast.Call)
                and isinstance(n.func, ast.Name)
                and n.func.id == "APIRouter"
            ]
            if made:
                builders.append(f"{path.relative_to(root).as_posix()}:{fn.name}")
    assert builders == []
