"""The audit chain: every state change is recorded; editing, deleting or reordering a row
makes verification fail at that row; the database refuses UPDATE/DELETE; the CLI says so."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, select, text
from typer.testing import CliRunner

from gateway.audit.chain import (
    CHECKPOINT_NAME,
    AuditEntry,
    AuditKeyError,
    AuditLog,
    load_audit_key,
    open_audit_log,
)
from gateway.audit.checkpoint import LOG_PREFIX, Checkpoints, parse_log_line
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


# -- checkpoints of the head (rows cut from the end) -----------------------------------------


@pytest.fixture
def checkpointed(tmp_path: Path) -> tuple[Engine, AuditLog]:
    """A chain of 7 rows whose head is checkpointed in <tmp>/audit-checkpoint.json."""
    engine = make_engine(f"sqlite:///{tmp_path / 'lianfang.db'}")
    migrate(engine)
    log = AuditLog(
        engine, AUDIT_KEY, checkpoints=Checkpoints(tmp_path / CHECKPOINT_NAME, AUDIT_KEY)
    )
    for n in range(1, 8):
        log.append(AuditEntry(actor=f"user{n}", action="incident.act", after={"n": n}))
    return engine, log


def test_the_head_is_checkpointed_after_every_append(
    checkpointed: tuple[Engine, AuditLog], tmp_path: Path
) -> None:
    _, log = checkpointed
    assert log.checkpoints is not None
    cp = log.checkpoints.read()
    assert cp is not None and (cp.id, cp.hash) == log.head()
    path = tmp_path / CHECKPOINT_NAME
    assert path.stat().st_mode & 0o777 == 0o600
    result = log.verify()
    assert result.ok and "row 7" in result.checkpoint


def test_cutting_the_newest_row_is_reported(checkpointed: tuple[Engine, AuditLog]) -> None:
    engine, log = checkpointed
    assert log.verify().ok
    _unlocked(engine, "DELETE FROM audit_log WHERE id = 7")
    result = log.verify()
    assert not result.ok and result.bad_row == 7 and result.checked == 6
    assert "cut from the end" in result.reason


def test_cutting_and_appending_again_is_reported(checkpointed: tuple[Engine, AuditLog]) -> None:
    """Rows cut, then as many written again with the key (ids match): row 7 differs."""
    engine, log = checkpointed
    _unlocked(engine, "DELETE FROM audit_log WHERE id >= 6")
    plain = AuditLog(engine, AUDIT_KEY)  # an intruder's writer, without the checkpoint file
    for n in (6, 7):
        plain.append(AuditEntry(actor="mallory", action="innocent", after={"n": n}))
    result = log.verify()
    assert not result.ok and result.bad_row == 7 and "not the row checkpointed" in result.reason
    # the gateway's next rows do not move the checkpoint past the evidence
    log.append(AuditEntry(actor="user8", action="incident.act"))
    assert log.checkpoints is not None and log.checkpoints.read().id == 7  # type: ignore[union-attr]
    assert log.verify().bad_row == 7


def test_an_altered_checkpoint_is_reported(
    checkpointed: tuple[Engine, AuditLog], tmp_path: Path
) -> None:
    _, log = checkpointed
    path = tmp_path / CHECKPOINT_NAME
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "id": 3}))  # to hide rows 4-7 being cut
    result = log.verify()
    assert not result.ok and "signature" in result.reason


def test_a_replayed_old_checkpoint_is_caught_by_the_logs_copy(
    checkpointed: tuple[Engine, AuditLog], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Someone who may write the checkpoint file can put an older genuine one back; the
    copy in the log (``--head``) still names the newest row."""
    engine, log = checkpointed
    path = tmp_path / CHECKPOINT_NAME
    older = path.read_text()
    log.append(AuditEntry(actor="user8", action="incident.act"))
    with caplog.at_level(logging.INFO, logger="gateway.audit.checkpoint"):
        assert log.checkpoint_to_log()
        assert not log.checkpoint_to_log()  # only when the head moved
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith(LOG_PREFIX))
    _unlocked(engine, "DELETE FROM audit_log WHERE id = 8")
    path.write_text(older)
    assert log.verify().ok  # the file alone cannot tell
    result = log.verify(expect=parse_log_line(line))
    assert not result.ok and result.bad_row == 8


def test_a_cut_tail_is_logged_as_an_error_not_as_the_new_head(
    checkpointed: tuple[Engine, AuditLog], caplog: pytest.LogCaptureFixture
) -> None:
    engine, log = checkpointed
    _unlocked(engine, "DELETE FROM audit_log WHERE id = 7")
    with caplog.at_level(logging.INFO):
        assert not log.checkpoint_to_log()
    assert "ends at row 6" in caplog.text and LOG_PREFIX not in caplog.text


def test_cli_verify_reports_a_cut_tail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIANFANG_AUDIT_KEY", AUDIT_KEY.decode())
    url = f"sqlite:///{tmp_path / 'lianfang.db'}"
    engine = make_engine(url)
    migrate(engine)
    log = open_audit_log(engine, tmp_path)
    for n in range(1, 4):
        log.append(AuditEntry(actor=f"user{n}", action="x"))
    args = ["verify", "--database", url, "--data-dir", str(tmp_path)]
    ok = CliRunner().invoke(audit_app, args)
    assert ok.exit_code == 0 and "checkpoint of row 3" in ok.output
    _unlocked(engine, "DELETE FROM audit_log WHERE id = 3")
    bad = CliRunner().invoke(audit_app, args)
    assert bad.exit_code == 1 and "first bad row 3" in bad.output, bad.output


def test_a_failed_checkpoint_write_does_not_undo_the_row(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'lianfang.db'}")
    migrate(engine)
    blocked = tmp_path / "cp"
    blocked.mkdir()  # a directory where the file should be: the write fails
    log = AuditLog(engine, AUDIT_KEY, checkpoints=Checkpoints(blocked, AUDIT_KEY))
    assert log.append(AuditEntry(actor="a", action="x")) == 1
    assert log.head()[0] == 1 and "could not write the checkpoint" in caplog.text


# -- where the key comes from ----------------------------------------------------------------


def test_key_from_the_environment_or_a_secrets_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("LIANFANG_AUDIT_KEY", raising=False)
    secret = tmp_path / "secrets" / "audit.key"
    secret.parent.mkdir()
    secret.write_text("from-the-secrets-file\n")
    secret.chmod(0o600)
    data = tmp_path / "data"
    assert load_audit_key(data, secret) == b"from-the-secrets-file"
    assert not (data / "audit.key").exists()  # nothing beside the database
    monkeypatch.setenv("LIANFANG_AUDIT_KEY_FILE", str(secret))
    assert load_audit_key(data) == b"from-the-secrets-file"
    secret.chmod(0o640)
    with pytest.raises(AuditKeyError, match="chmod 600"):
        load_audit_key(data)
    monkeypatch.setenv("LIANFANG_AUDIT_KEY", "from-the-environment")
    assert load_audit_key(data) == b"from-the-environment"
    # the zero-set-up default: created beside the database, with a warning
    monkeypatch.delenv("LIANFANG_AUDIT_KEY")
    monkeypatch.delenv("LIANFANG_AUDIT_KEY_FILE")
    with caplog.at_level(logging.WARNING):
        key = load_audit_key(data)
    assert len(key) == 64 and (data / "audit.key").stat().st_mode & 0o777 == 0o600
    assert "beside the database" in caplog.text
