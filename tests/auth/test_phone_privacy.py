"""Phone numbers: stored hashed, masked and encrypted (AES-GCM), never in clear; listed
masked to everyone; revealed one record at a time to ``pii:read`` roles within their scope,
each reveal an audit row; a wrong key is a clear answer, not a crash; the key file must be
0600; logs and audit rows never hold a number."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway import privacy
from gateway.audit.tables import audit_log
from gateway.grid import tables as gt
from gateway.storage.tables import metadata
from tests.auth.conftest import World, make_world

WORKER_1 = "13800000021"  # config/grid/people.yaml: p-worker-1 (cell shifan-01)
HOUSEHOLD_1 = "13900000000"  # config/grid/households.csv: 1-1-101 (cell shifan-01)
KEY = b"test-pii-key-0123456789abcdef0123456789abcdef"


@pytest.fixture
def pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A configured personal-data key for this test only (restored afterwards)."""
    monkeypatch.delenv(privacy.KEY_ENV, raising=False)
    monkeypatch.setattr(privacy, "_key", None)
    monkeypatch.setattr(privacy, "_phone", None)
    privacy.set_pii_key(KEY)


@pytest.fixture
async def world(tmp_path: Path, pii_key: None) -> AsyncIterator[World]:
    """The auth world, its grid (config/grid) imported with the key configured."""
    async for w in make_world(tmp_path):
        yield w


async def _get(w: World, user: str, path: str) -> Any:
    answer = await w.client.get(path, headers=w.as_(user))
    assert answer.status_code == 200, answer.text
    return answer.json()


def _audit_rows(w: World) -> list[dict[str, Any]]:
    with w.rt.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(audit_log).order_by(audit_log.c.id))]


def _everything_stored(w: World) -> str:
    """Every row of every table, as text."""
    out = []
    with w.rt.engine.connect() as conn:
        for table in metadata.sorted_tables:
            out += [json.dumps(dict(r._mapping), default=str) for r in conn.execute(select(table))]
    return "\n".join(out)


async def test_no_number_is_stored_in_clear(world: World) -> None:
    stored = _everything_stored(world)
    assert WORKER_1 not in stored and HOUSEHOLD_1 not in stored
    with world.rt.engine.connect() as conn:
        person = conn.execute(
            select(gt.grid_people).where(gt.grid_people.c.id == "p-worker-1")
        ).one()
        household = conn.execute(
            select(gt.grid_households).where(gt.grid_households.c.id == "1-1-101")
        ).one()
    assert person.phone_masked == "*******0021"
    assert person.phone_ref.startswith("phone:")
    assert person.phone_enc.startswith("v1.")
    contact = household.contacts[0]
    assert contact["phone_enc"].startswith("v1.") and contact["phone_masked"] == "*******0000"
    # the same number for two records encrypts differently (random nonce, bound to its owner)
    again = privacy.encrypt_phone(WORKER_1, "person/p-worker-1")
    assert again != person.phone_enc
    assert privacy.decrypt_phone(person.phone_enc, "person/p-worker-1") == WORKER_1


@pytest.mark.parametrize("user", ["w1", "desk1", "cmd", "admin", "h2"])
async def test_listings_are_masked_for_everyone(world: World, user: str) -> None:
    people = await _get(world, user, "/api/grid/people")
    households = await _get(world, user, "/api/grid/households")
    text = json.dumps([people, households])
    assert WORKER_1 not in text and HOUSEHOLD_1 not in text
    for p in people:
        assert not {"phone", "phone_ref", "phone_enc"} & set(p)
    for h in households:
        for c in h["contacts"]:
            assert not {"phone", "phone_ref", "phone_enc"} & set(c)


async def test_police_desk_reveals_a_number_in_its_beat_audited(world: World) -> None:
    before = len(_audit_rows(world))
    person = await _get(world, "desk1", "/api/grid/people/p-worker-1/phone")
    assert person == {
        "id": "p-worker-1",
        "name": "赵敏",
        "phone": WORKER_1,
        "phone_masked": "*******0021",
    }
    household = await _get(world, "desk1", "/api/grid/households/1-1-101/phones")
    assert household["contacts"][0]["phone"] == HOUSEHOLD_1
    rows = _audit_rows(world)[before:]
    assert [(r["actor"], r["role"], r["action"], r["target"]) for r in rows] == [
        ("desk1", "police_desk", "GET /api/grid/people/{person_id}/phone",
         "/api/grid/people/p-worker-1/phone"),
        ("desk1", "police_desk", "GET /api/grid/households/{household_id}/phones",
         "/api/grid/households/1-1-101/phones"),
    ]  # fmt: skip
    assert rows[0]["after"] == {"revealed": {"person": "p-worker-1", "revealed": True}}
    assert WORKER_1 not in json.dumps(rows, default=str)
    assert HOUSEHOLD_1 not in json.dumps(rows, default=str)
    assert world.auth.audit.verify().ok


async def test_reveal_is_scoped_and_needs_pii_read(world: World) -> None:
    for path in ("/api/grid/people/p-worker-3/phone", "/api/grid/households/6-1-102/phones"):
        answer = await world.client.get(path, headers=world.as_("desk1"))  # beat 2: not theirs
        assert answer.status_code == 404
    for user in ("admin", "integ", "res1", "pm"):  # no pii:read (residents: no grid either)
        for path in ("/api/grid/people/p-worker-1/phone", "/api/grid/households/1-1-101/phones"):
            answer = await world.client.get(path, headers=world.as_(user))
            assert answer.status_code == 403, (user, path)
            assert WORKER_1 not in answer.text and HOUSEHOLD_1 not in answer.text
    # a grid worker has pii:read (they call residents back): numbers of their own cell only
    assert (await _get(world, "w1", "/api/grid/people/p-worker-1/phone"))["phone"] == WORKER_1
    answer = await world.client.get("/api/grid/people/p-worker-3/phone", headers=world.as_("w1"))
    assert answer.status_code == 404


async def test_wrong_key_is_a_clear_answer_not_a_crash(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    privacy.set_pii_key(b"some-other-key")
    with caplog.at_level(logging.ERROR):
        person = await _get(world, "desk1", "/api/grid/people/p-worker-1/phone")
        household = await _get(world, "desk1", "/api/grid/households/1-1-101/phones")
    assert person["phone"] is None and person["phone_masked"] == "*******0021"
    assert "wrong LIANFANG_PII_KEY" in person["phone_error"]
    assert household["contacts"][0]["phone"] is None
    assert "cannot reveal the phone number of person/p-worker-1" in caplog.text
    assert WORKER_1 not in caplog.text


async def test_saved_person_is_encrypted_and_the_audit_row_redacted(world: World) -> None:
    number = "13712345678"
    body = {"id": "p-new", "name": "新网格员", "phone": number, "roles": ["grid_worker"],
            "cells": ["shifan-01"]}  # fmt: skip
    answer = await world.client.put("/api/grid/people/p-new", json=body, headers=world.as_("admin"))
    assert answer.status_code == 200, answer.text
    bad = {**body, "phone": "1371234567x"}
    answer = await world.client.put("/api/grid/people/p-new", json=bad, headers=world.as_("admin"))
    assert answer.status_code == 422
    assert number not in _everything_stored(world)
    assert "1371234567x" not in _everything_stored(world)  # the 422's "input" is redacted too
    assert (await _get(world, "w1", "/api/grid/people/p-new/phone"))["phone"] == number


def test_decrypt_refuses_altered_or_moved_values(pii_key: None) -> None:
    token = privacy.encrypt_phone(WORKER_1, "person/a")
    assert token is not None
    with pytest.raises(privacy.PiiKeyError, match="another record"):
        privacy.decrypt_phone(token, "person/b")
    version, key_id, body = token.split(".")
    flipped = body[:-4] + ("AAAA" if body[-4:] != "AAAA" else "BBBB")
    with pytest.raises(privacy.PiiKeyError, match="altered"):
        privacy.decrypt_phone(f"{version}.{key_id}.{flipped}", "person/a")
    with pytest.raises(privacy.PiiKeyError, match="unknown format"):
        privacy.decrypt_phone(WORKER_1, "person/a")


def test_without_a_key_nothing_reversible_is_stored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(privacy.KEY_ENV, raising=False)
    monkeypatch.setattr(privacy, "_key", None)
    monkeypatch.setattr(privacy, "_phone", None)
    assert privacy.encrypt_phone(WORKER_1, "person/a") is None
    assert privacy.pseudonymise(WORKER_1, "phone").startswith("phone:")  # per-process key
    with pytest.raises(privacy.PiiKeyError, match="no personal-data key"):
        privacy.decrypt_phone("v1.abcd1234.AAAA", "person/a")


def test_key_file_is_created_0600_and_refused_when_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(privacy.KEY_ENV, raising=False)
    key = privacy.load_pii_key(tmp_path)
    path = tmp_path / "pii.key"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert privacy.load_pii_key(tmp_path) == key  # the same key on the next start
    for mode in (0o640, 0o604):
        path.chmod(mode)
        with pytest.raises(privacy.PiiKeyError, match="chmod 600"):
            privacy.load_pii_key(tmp_path)
    monkeypatch.setenv(privacy.KEY_ENV, "from-the-environment")
    assert privacy.load_pii_key(tmp_path) == b"from-the-environment"
    with pytest.raises(privacy.PiiKeyError, match="not set"):
        monkeypatch.delenv(privacy.KEY_ENV)
        privacy.load_pii_key(None)


def test_logs_never_hold_a_number(caplog: pytest.LogCaptureFixture) -> None:
    assert privacy.redact_identifiers(
        f"sms to {WORKER_1}, +86 13912345678, 0576-86000110, id 33010219900101123X, "
        "event 20260512020000123456789 at 1715480000000"
    ) == (
        "sms to *******0021, ********5678, ********0110, id ********123X, "
        "event 20260512020000123456789 at 1715480000000"
    )
    previous = logging.getLogRecordFactory()
    try:
        privacy.install_log_redaction()
        with caplog.at_level(logging.INFO):
            logging.getLogger("lianfang.test").info("calling %s for %s", WORKER_1, "1-1-101")
        assert "calling *******0021 for 1-1-101" in caplog.text
        assert WORKER_1 not in caplog.text
        try:
            raise ValueError(f"not a valid contact: {WORKER_1}")
        except ValueError:
            logging.getLogger("lianfang.test").exception("import failed")
        assert "ValueError: not a valid contact: *******0021" in caplog.text
        assert WORKER_1 not in caplog.text
    finally:
        logging.setLogRecordFactory(previous)
        privacy._installed = False
