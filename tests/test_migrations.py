"""The schema the Alembic migrations build is the one the table metadata declares (on SQLite
and PostgreSQL), and the audit log's target index (migration 0006) serves the incident
page's look-up of its audit rows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, insert, inspect, text

import gateway.auth.tables
import gateway.cluster.tables
import gateway.grid.tables
import gateway.incidents.tables
import gateway.notify.tables  # noqa: F401  (every table on the shared metadata)
from gateway.audit.tables import audit_log
from gateway.storage.db import MIGRATIONS, make_engine, migrate
from gateway.storage.tables import metadata
from gateway.web.incident_context import incident_audit, incident_audit_query
from tests.conftest import postgres_database

DIALECTS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=DIALECTS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A fresh database brought to the newest revision by the migrations."""
    with ExitStack() as stack:
        if request.param == "postgres":
            url = stack.enter_context(postgres_database())
        else:
            url = f"sqlite:///{tmp_path / 'schema.db'}"
        eng = make_engine(url)
        stack.callback(eng.dispose)
        migrate(eng)
        yield eng


def alembic(engine: Engine, action: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)


def target_indexes(engine: Engine) -> list[dict[str, object]]:
    return [
        i for i in inspect(engine).get_indexes("audit_log") if i["name"] == "ix_audit_log_target"
    ]


def _declared(engine: Engine) -> Callable[..., bool]:
    """What the metadata declares: on PostgreSQL ``events`` is the partitioned table of
    migration 0007 (its partitions, keys and indexes are checked in test_datapool_storage)."""
    postgres = engine.dialect.name == "postgresql"

    def include(obj: Any, name: str | None, type_: str, reflected: bool, _other: Any) -> bool:
        table = obj if type_ == "table" else getattr(obj, "table", None)
        table_name = name if type_ == "table" else getattr(table, "name", None)
        return not (
            postgres
            and table_name is not None
            and (
                table_name in ("events", "event_keys", "event_counts")
                or table_name.startswith("events_")
            )
        )

    return include


def test_migrated_schema_equals_the_metadata(engine: Engine) -> None:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": _declared(engine)}
        )
        diff = compare_metadata(ctx, metadata)
    assert diff == []
    # the index the incident page's audit rows rely on (migration 0006)
    assert [i["column_names"] for i in target_indexes(engine)] == [["target"]]
    if engine.dialect.name == "postgresql":  # a prefix LIKE needs the pattern operator class
        with engine.connect() as conn:
            indexdef = conn.execute(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_audit_log_target'")
            ).scalar_one()
        assert "varchar_pattern_ops" in indexdef


def test_target_index_migration_goes_down_and_up(engine: Engine) -> None:
    alembic(engine, "downgrade", "0005")
    assert target_indexes(engine) == []
    alembic(engine, "upgrade", "head")
    assert len(target_indexes(engine)) == 1


def add_rows(engine: Engine, targets: list[str]) -> None:
    at = datetime(2026, 5, 12, 10, tzinfo=UTC)
    rows = [
        {"id": n, "at": at, "actor": "desk", "role": "police_desk", "source_ip": "",
         "action": f"POST {target}", "target": target, "status": 200,
         "prev_hash": "0" * 64, "hash": f"{n:064d}"}
        for n, target in enumerate(targets, start=1)
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(audit_log), rows)


def test_incident_audit_rows_are_found_by_target(engine: Engine) -> None:
    about_7 = [
        "/api/incidents/7",
        "/api/incidents/7/actions",
        "/api/web/incidents/7/snapshot",
        "/api/incidents/7/attachments",
    ]
    others = [
        "/api/incidents/70/actions",  # another incident whose id starts alike
        "/api/incidents/7x",
        "/API/INCIDENTS/7/actions",  # paths are case-sensitive
        "/api/grid/households/1-1-101/phones",
        "/api/incidents/17/actions",
    ]
    add_rows(engine, [*others[:2], *about_7[:2], *others[2:], *about_7[2:]])
    found = incident_audit(engine, 7)
    assert [r["action"].removeprefix("POST ") for r in found] == about_7
    assert incident_audit(engine, 70)[0]["action"] == "POST /api/incidents/70/actions"


def test_incident_audit_query_uses_the_target_index(engine: Engine) -> None:
    add_rows(engine, [f"/api/incidents/{n % 50}/actions" for n in range(500)])
    stmt = incident_audit_query(7, engine.dialect.name)
    compiled = stmt.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            plan = " ".join(
                str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")
            )
            assert "SCAN audit_log" not in plan and plan.count("ix_audit_log_target") == 4, plan
        else:
            conn.execute(text("ANALYZE audit_log"))
            conn.execute(text("SET LOCAL enable_seqscan = off"))  # a small table: is it usable
            plan = " ".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
            assert "Seq Scan" not in plan and plan.count("ix_audit_log_target") == 4, plan
