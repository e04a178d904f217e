"""``lianfang import``: phone numbers go in under the gateway's key, or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from typer.testing import CliRunner

from gateway import privacy
from gateway.cli.main import app
from gateway.grid.store import person_owner
from gateway.grid.tables import grid_people
from tests.support.compound import ROOT

runner = CliRunner()
GRID = ROOT / "config" / "grid"


@pytest.fixture(autouse=True)
def _fresh_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(privacy.KEY_ENV, raising=False)
    monkeypatch.setattr(privacy, "_key", None)
    monkeypatch.setattr(privacy, "_phone", None)


def test_import_without_the_gateways_key_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    result = runner.invoke(app, ["import", str(GRID), "--database", url])
    assert result.exit_code == 2
    assert "LIANFANG_PII_KEY" in result.output
    assert not (tmp_path / "g.db").exists()


def test_import_with_the_key_stores_numbers_the_gateway_can_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(privacy.KEY_ENV, "the-gateway-key")
    url = f"sqlite:///{tmp_path / 'g.db'}"
    result = runner.invoke(app, ["import", str(GRID), "--database", url])
    assert result.exit_code == 0, result.output
    with create_engine(url).connect() as conn:
        rows = conn.execute(select(grid_people.c.id, grid_people.c.phone_enc)).all()
    numbers = [privacy.decrypt_phone(enc, person_owner(pid)) for pid, enc in rows if enc]
    assert numbers and all(n[0].isdigit() for n in numbers)
