"""The data folder is its owner's only: the database and its WAL files, attachments,
evidence snapshots, keys and checkpoints are created 0600 (folders 0700), whatever the
umask, and a start-up check tightens what an older version left readable."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.audit.chain import AuditEntry
from gateway.config.settings import load_gateway_config
from gateway.evidence.snapshot import Snapshot
from gateway.evidence.store import EvidenceStore
from gateway.incidents import attachments
from gateway.runtime import Gateway
from gateway.storage.db import make_engine, migrate
from gateway.storage.files import secure_data_dir
from tests.support.compound import write_gateway_config

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


@pytest.fixture(autouse=True)
def loose_umask() -> Iterator[None]:
    """A umask that would leave files readable by everyone (the common default)."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def readable_by_others(root: Path) -> list[str]:
    return [
        f"{p} {oct(mode(p))}"
        for p in [root, *root.rglob("*")]
        if not p.is_symlink() and mode(p) & 0o077
    ]


def test_sqlite_database_and_wal_files_are_owner_only(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'lianfang.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (a INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
        names = {p.name: mode(p) for p in (tmp_path / "data").iterdir()}
    assert names == {"lianfang.db": 0o600, "lianfang.db-wal": 0o600, "lianfang.db-shm": 0o600}
    assert mode(tmp_path / "data") == 0o700
    engine.dispose()


def test_attachments_and_evidence_are_owner_only(tmp_path: Path) -> None:
    row = attachments.write(tmp_path, 7, PNG, "image/png")
    path = attachments.path_for(tmp_path, 7, row["id"], "image/png")
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    store = EvidenceStore(tmp_path / "evidence")
    store.load()
    shot = Snapshot("cam-1", datetime(2026, 5, 1, tzinfo=UTC), b"\xff\xd8\xff" + b"0" * 64, "http")
    store.save(shot, ref="incident-7")
    assert readable_by_others(tmp_path / "evidence") == []


def test_start_up_tightens_what_others_could_read(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "attachments" / "1").mkdir(parents=True, mode=0o755)
    data.chmod(0o755)
    (data / "attachments").chmod(0o755)
    (data / "attachments" / "1" / "a.jpg").write_bytes(b"x")
    (data / "lianfang.db").write_bytes(b"")
    for p in (data / "attachments" / "1" / "a.jpg", data / "lianfang.db"):
        p.chmod(0o644)
    key = data / "pii.key"
    key.write_text("k")
    key.chmod(0o644)
    assert secure_data_dir(data) == 5
    assert readable_by_others(data) == [f"{key} 0o644"]  # a readable key is refused, not hidden


def test_a_gateway_data_folder_is_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Everything a gateway creates in its data folder on start (database, WAL, keys, the
    audit checkpoint) with a loose umask."""
    monkeypatch.delenv("LIANFANG_PII_KEY", raising=False)
    monkeypatch.delenv("LIANFANG_AUDIT_KEY", raising=False)
    config_path = write_gateway_config(tmp_path, 1)
    config = load_gateway_config(config_path)
    gw = Gateway(config, protocol="v311")
    try:
        migrate(gw.engine)
        gw.incidents.acks.audit.append(AuditEntry(actor="t", action="x"))  # type: ignore[union-attr]
        names = {p.name for p in config.data_dir.iterdir()}
        assert {"lianfang.db", "pii.key", "audit.key", "audit-checkpoint.json"} <= names
        assert readable_by_others(config.data_dir) == []
    finally:
        gw.engine.dispose()
