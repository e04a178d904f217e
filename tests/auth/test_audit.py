"""The audit chain: every state change is recorded; editing, deleting or reordering a row
makes verification fail at that row; the database refuses UPDATE/DELETE; the CLI says so."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, select, text
from typer.testing import CliRunner

from gateway.audit.chain import AuditEntry, AuditLog
from gateway.audit.tables import audit_log
from gateway.cli.audit_cmd import app as audit_app
from gateway.storage.db import make_engine, migrate
from tests.auth.conftest import AUDIT_KEY, World


@pytest.fixture
def chain(tmp_path: Path) -> tuple[Engine, AuditLog]:
    engine = make_engine(f"sqlite:///{tmp_path / 'lianfang.db'}")
    migrate(engine)
    log = AuditLog(engine, AUDIT_KEY)
    for n in range(1, 8):
        log.append(AuditEntry(actor=f"user{n}", action="incident.act", after={"n": n}))
    return engine, log


def _unlocked(engine: Engine, sql: str, **params: object) -> None:
    """What an intruder with database access does: drop the guard triggers, then write."""
    with engine.begin() as conn:
        conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_update"))
        conn.execute(text("DROP TRIGGER IF EXISTS audit_log_no_delete"))
        conn.execute(text(sql), params)


def test_intact_chain_verifies(chain: tuple[Engine, AuditLog]) -> None:
    result = chain[1].verify()
    assert result.ok and result.checked == 7


def test_the_database_refuses_update_and_delete(chain: tuple[Engine, AuditLog]) -> None:
    engine, _ = chain
    for sql in (
        "UPDATE audit_log SET actor = 'x' WHERE id = 2",
        "DELETE FROM audit_log WHERE id = 2",
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(text(sql))


def test_edited_row_fails_at_that_row(chain: tuple[Engine, AuditLog]) -> None:
    engine, log = chain
    _unlocked(engine, "UPDATE audit_log SET actor = 'mallory' WHERE id = 4")
    result = log.verify()
    assert not result.ok and result.bad_row == 4 and result.checked == 3
    assert "altered" in result.reason


def test_edited_json_fails_at_that_row(chain: tuple[Engine, AuditLog]) -> None:
    engine, log = chain
    _unlocked(engine, "UPDATE audit_log SET after = '{\"n\": 99}' WHERE id = 6")
    assert log.verify().bad_row == 6


def test_deleted_row_fails_at_that_row(chain: tuple[Engine, AuditLog]) -> None:
    engine, log = chain
    _unlocked(engine, "DELETE FROM audit_log WHERE id = 3")
    result = log.verify()
    assert not result.ok and result.bad_row == 3 and "missing" in result.reason


def test_deleted_first_row_fails_at_row_1(chain: tuple[Engine, AuditLog]) -> None:
    engine, log = chain
    _unlocked(engine, "DELETE FROM audit_log WHERE id = 1")
    assert log.verify().bad_row == 1


def test_reordered_rows_fail_at_the_first_moved_row(chain: tuple[Engine, AuditLog]) -> None:
    engine, log = chain
    with engine.connect() as conn:
        rows = {r.id: dict(r._mapping) for r in conn.execute(select(audit_log))}
    # swap the contents of rows 3 and 5, each keeping its own valid hash
    _unlocked(engine, "DELETE FROM audit_log WHERE id IN (3, 5)")
    with engine.begin() as conn:
        conn.execute(sa.insert(audit_log), [{**rows[5], "id": 3}, {**rows[3], "id": 5}])
    result = log.verify()
    assert not result.ok and result.bad_row == 3


def test_a_forged_row_without_the_key_fails(chain: tuple[Engine, AuditLog]) -> None:
    engine, _ = chain
    AuditLog(engine, b"not-the-key").append(AuditEntry(actor="mallory", action="x"))
    assert AuditLog(engine, AUDIT_KEY).verify().bad_row == 8


def test_cli_verify(
    chain: tuple[Engine, AuditLog], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, _ = chain
    monkeypatch.setenv("LIANFANG_AUDIT_KEY", AUDIT_KEY.decode())
    url = str(engine.url)
    ok = CliRunner().invoke(audit_app, ["verify", "--database", url])
    assert ok.exit_code == 0 and "7 rows" in ok.output
    _unlocked(engine, "UPDATE audit_log SET role = 'administrator' WHERE id = 5")
    bad = CliRunner().invoke(audit_app, ["verify", "--database", url])
    assert bad.exit_code == 1 and "first bad row 5" in bad.output


async def test_state_changes_through_the_api_are_audited(world: World) -> None:
    iid = world.incidents["cell1"]
    r = await world.client.post(
        f"/api/incidents/{iid}/actions",
        json={"action": "comment", "note": "电话 13800000000", "phone": "13800000000"},
        headers={**world.as_("w1"), "x-forwarded-for": "10.0.0.9"},
    )
    assert r.status_code == 200
    with world.rt.engine.connect() as conn:
        last = conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(1)).one()
    assert last.actor == "w1" and last.role == "grid_worker"
    assert last.action == "POST /api/incidents/{incident_id}/actions"
    assert last.status == 200 and last.source_ip == "127.0.0.1"
    assert last.after["request"]["phone"] == "***"
    assert last.after["response"]["stage"]
    # reads are not audited; refused writes are, with who tried
    await world.client.get("/api/incidents", headers=world.as_("w1"))
    await world.client.post(
        "/api/alarms", json={"household": "6-1-102"}, headers=world.as_("desk1")
    )
    with world.rt.engine.connect() as conn:
        rows = conn.execute(select(audit_log).order_by(audit_log.c.id.desc()).limit(2)).all()
    assert rows[0].action == "POST /api/alarms" and rows[0].status == 403
    assert rows[0].actor == "desk1"
    assert rows[1].id == last.id
    assert world.auth.audit.verify().ok
