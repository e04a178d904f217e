"""Migration 0007 on databases written before it (SQLite and PostgreSQL): who took an
acknowledged incident is read from its timeline, the deadlines the old code left running on
acknowledged incidents are lifted, and one open incident per group key is kept and then
enforced."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from gateway.incidents.tables import incident_timeline, incidents
from gateway.notify.tables import notifications
from gateway.storage.db import MIGRATIONS, make_engine
from tests.conftest import postgres_database

DIALECTS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
T0 = datetime(2026, 5, 12, 2, 0, tzinfo=UTC)


def alembic(engine: Engine, action: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)


@pytest.fixture(params=DIALECTS)
def before_0007(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database at revision 0006."""
    with ExitStack() as stack:
        if request.param == "postgres":
            url = stack.enter_context(postgres_database())
        else:
            url = f"sqlite:///{tmp_path / 'old.db'}"
        engine = make_engine(url)
        stack.callback(engine.dispose)
        alembic(engine, "upgrade", "0006")
        yield engine


def old_incident(incident_id: int, acked_at: datetime | None, **extra: Any) -> dict[str, Any]:
    """An incident row as revision 0006 stored it (no ``acked_by``)."""
    return {
        "id": incident_id, "source": "rule", "category": "panic", "severity": "P1",
        "title_zh": "一键报警", "title_en": "", "description": "", "stage": "discovered",
        "site": "demo-compound", "cell": "shifan-01", "rule_id": "panic_button",
        "group_key": f"device_id=panic-{incident_id}", "labels": {}, "event_ids": [],
        "event_count": 1, "signal_count": 1, "assignees": [], "opened_at": T0,
        "updated_at": T0, "acked_at": acked_at, **extra,
    }  # fmt: skip


def old_notification(nid: int, incident_id: int, recipient: str) -> dict[str, Any]:
    kind, rid = recipient.split("/")
    return {
        "id": nid, "incident_id": incident_id, "occasion": "new", "recipient_kind": kind,
        "recipient_id": rid, "channel": "mqtt", "status": "sent", "created_at": T0,
        "ack_required": True, "ack_deadline": T0 + timedelta(seconds=60), "payload": {},
    }  # fmt: skip


def ack_entry(incident_id: int, at: datetime, actor: str) -> dict[str, Any]:
    return {
        "incident_id": incident_id, "at": at, "actor": actor, "role": "", "action": "acknowledge",
        "note": "", "attachments": [], "data": {},
    }  # fmt: skip


def test_0007_names_who_took_it_and_lifts_deadlines_left_running(before_0007: Engine) -> None:
    taken_at = T0 + timedelta(seconds=20)
    with before_0007.begin() as conn:
        conn.execute(insert(incidents), [old_incident(1, taken_at), old_incident(2, None)])
        conn.execute(
            insert(incident_timeline),
            [
                ack_entry(1, T0 + timedelta(seconds=5), "p-neighbour"),  # "seen", not taken
                ack_entry(1, taken_at, "p-desk"),
            ],
        )
        conn.execute(
            insert(notifications),
            [
                old_notification(1, 1, "person/p-worker-4"),  # left running by the old code
                old_notification(2, 2, "person/p-worker-1"),  # nobody acknowledged: runs on
            ],
        )
    alembic(before_0007, "upgrade", "head")
    with before_0007.connect() as conn:
        taken = dict(conn.execute(select(incidents.c.id, incidents.c.acked_by)).all())
        running = dict(conn.execute(select(notifications.c.id, notifications.c.ack_required)).all())
    assert taken == {1: "p-desk", 2: None}
    assert running == {1: False, 2: True}


def test_0007_keeps_one_open_incident_per_group_and_enforces_it(before_0007: Engine) -> None:
    """Two open incidents of one group (the old look-up could make them): the newest keeps
    the group, the older is detached with a timeline note; a closed one of the group and
    another site's are left alone. Afterwards the database refuses a second open one."""
    same = {"group_key": "device_id=panic-6-102"}
    with before_0007.begin() as conn:
        conn.execute(
            insert(incidents),
            [
                old_incident(1, None, **same),
                old_incident(2, None, **same, stage="false_alarm"),  # closed: not a rival
                old_incident(3, None, **same, site="other-compound"),  # another site
                old_incident(4, None, **same),  # the newest open one: new signals joined it
                old_incident(5, None, **same, site=None),
                old_incident(6, None, **same, site=None),  # no site: one group too
            ],
        )
    alembic(before_0007, "upgrade", "head")
    with before_0007.connect() as conn:
        keys = dict(conn.execute(select(incidents.c.id, incidents.c.group_key)).all())
        notes = conn.execute(
            select(incident_timeline.c.incident_id, incident_timeline.c.data).where(
                incident_timeline.c.action == "comment"
            )
        ).all()
    assert keys == {1: None, 2: same["group_key"], 3: same["group_key"], 4: same["group_key"],
                    5: None, 6: same["group_key"]}  # fmt: skip
    assert sorted((n.incident_id, n.data["grouped_into"]) for n in notes) == [(1, 4), (5, 6)]
    assert {n.data["detached_group_key"] for n in notes} == {same["group_key"]}
    with pytest.raises(IntegrityError), before_0007.begin() as conn:
        conn.execute(insert(incidents), [old_incident(7, None, **same)])
    with before_0007.begin() as conn:  # closed incidents of the group are not limited
        conn.execute(insert(incidents), [old_incident(8, None, **same, stage="verified")])
    alembic(before_0007, "downgrade", "0006")
    with before_0007.begin() as conn:  # before 0007 nothing held it
        conn.execute(insert(incidents), [old_incident(9, None, **same)])
