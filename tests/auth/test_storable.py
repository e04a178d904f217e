"""Text the database cannot store (NUL, lone surrogates) is refused at the edge with a 4xx on
every route — on SQLite and on PostgreSQL, where it used to be a 500 (the unauthenticated
login included) — and no log line carries a password hash or secret."""

from __future__ import annotations

import json
import logging
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from hypothesis.errors import NonInteractiveExampleWarning
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from gateway.privacy import install_log_redaction
from gateway.storage.db import make_engine
from tests.auth.conftest import World, make_world
from tests.auth.test_schemathesis import STREAMS, _request
from tests.conftest import postgres_database
from tests.support.auth import cheap_argon2

NUL = "ad\x00min"
SURROGATE = "\ud800x"


@pytest.fixture(autouse=True)
def _cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_argon2(monkeypatch)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest) -> Iterator[str | None]:
    if request.param == "sqlite":
        yield None
    else:
        with postgres_database() as url:
            yield url


@pytest.fixture
async def any_world(tmp_path: Path, database: str | None) -> AsyncIterator[World]:
    async for w in make_world(tmp_path, database):
        w.auth.config = w.auth.config.model_copy(
            update={"alarm_rate": "10000/minute", "report_rate": "10000/minute"}
        )
        yield w


async def test_login_with_a_nul_answers_422_without_logging_secrets(
    any_world: World, caplog: pytest.LogCaptureFixture
) -> None:
    install_log_redaction()
    c = any_world.client
    with caplog.at_level(logging.DEBUG):
        for body in (
            {"username": NUL, "password": "x" * 12},
            {"username": "admin", "password": "a\x00" * 8},
            {"username": SURROGATE, "password": "x" * 12},
        ):
            r = await c.post(
                "/api/auth/login",
                content=json.dumps(body).encode(),
                headers={"content-type": "application/json"},
            )
            assert r.status_code == 422, r.text
            assert r.json()["detail"][0]["loc"][0] == "body"
            assert "\x00" not in r.text
        # a new user whose display name holds a NUL: refused, and nothing of it logged
        r = await c.post(
            "/api/users",
            json={"username": "neu", "password": "p" * 14, "role": "grid_worker",
                  "display_name": "a\x00b"},
            headers=any_world.as_("admin"),
        )  # fmt: skip
        assert r.status_code == 422
    assert "$argon2" not in caplog.text and "password_hash" not in caplog.text


async def test_anonymous_callers_still_get_401_first(any_world: World) -> None:
    r = await any_world.client.get("/api/incidents", params={"site": "a\x00"})
    assert r.status_code == 401


async def test_every_operation_refuses_a_nul_with_a_4xx(any_world: World) -> None:
    """Every operation of the OpenAPI schema, with a NUL put into each of its string
    parameters and each string field of its JSON body in turn (as the administrator)."""
    w = any_world
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", w.app)
    admin = w.as_("admin")
    failures: list[str] = []
    tried = least = 0
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path in STREAMS:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NonInteractiveExampleWarning)
            case = op.as_strategy().example()
        declared = [p.name for p in op.query]
        least += len(declared) + len(list(op.path_parameters))
        for request in _with_a_nul(op.path, case, declared):
            request["headers"] = {**request["headers"], **admin}
            try:
                r = await w.client.request(**request)
            except Exception as exc:  # an unhandled error is a 500 in production
                failures.append(f"{op.method.upper()} {op.path}: {exc!r}")
                continue
            tried += 1
            if not 400 <= r.status_code < 500:
                failures.append(f"{op.method.upper()} {op.path}: {r.status_code} {r.text[:200]}")
    assert not failures, "\n".join(failures)
    assert tried >= least > 40  # every declared parameter was tried at least once
    # the live stream refuses it too, before streaming
    async with w.client.stream(
        "GET", "/api/events/stream", params={"site": "a\x00"}, headers=admin
    ) as r:
        assert r.status_code == 422


def _with_a_nul(template: str, case: Any, query: list[str]) -> Iterator[dict[str, Any]]:
    """Requests made from ``case`` with one value made to hold a NUL: each declared query
    parameter, each path parameter, each string field of the JSON body in turn."""
    base = _request(case)
    path_values = {k: str(v) for k, v in (case.path_parameters or {}).items()}

    def url(values: dict[str, str]) -> str:
        out = template
        for key, value in values.items():
            out = out.replace("{" + key + "}", quote(value, safe=""))
        return out

    for key in query:
        yield {**base, "params": {**(case.query or {}), key: "a\x00b"}}
    for key in path_values:
        yield {**base, "url": url({**path_values, key: "a\x00b"})}
    content = base.get("content")
    if content and "json" in base["headers"].get("content-type", ""):
        data = json.loads(content)
        if isinstance(data, dict):
            for key, value in data.items():
                if isinstance(value, str) or value is None:
                    changed = json.dumps({**data, key: "a\x00b"}).encode()
                    yield {**base, "content": changed}


def test_driver_errors_do_not_quote_parameters(tmp_path: Path) -> None:
    """A statement that fails says which statement, never its values (hashes, phones)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (a TEXT PRIMARY KEY)"))
        conn.execute(text("INSERT INTO t VALUES (:a)"), {"a": "$argon2id$v=19$secret"})
    with pytest.raises(DBAPIError) as raised, engine.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (:a)"), {"a": "$argon2id$v=19$secret"})
    assert "secret" not in str(raised.value) and "hidden" in str(raised.value)


def test_logs_never_show_hashes_sessions_or_token_secrets(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_log_redaction()
    hashed = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info(
            "row %s", {"password_hash": hashed, "s": "lfs_" + "A" * 43, "t": "lft_0a1b_" + "B" * 43}
        )
    assert hashed not in caplog.text and "A" * 20 not in caplog.text and "B" * 20 not in caplog.text
    assert "lft_0a1b_***" in caplog.text
