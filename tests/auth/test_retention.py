"""Retention: nothing routine older than the period survives a purge; incident evidence,
newer records and the audit log do."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, insert, select

from gateway.audit.chain import AuditEntry, AuditLog
from gateway.audit.tables import audit_log
from gateway.incidents.tables import incidents
from gateway.retention import RetentionJob, purge
from gateway.storage.db import make_engine, migrate
from gateway.storage.tables import events, quarantine

NOW = datetime(2026, 6, 30, 12, 0, tzinfo=UTC)


def _event(n: int, at: datetime, kind: str) -> dict[str, object]:
    return {
        "event_id": f"e{n}", "site": "s", "device_id": "d", "kind": kind,
        "type": "access_granted" if kind == "access" else "plate_read",
        "occurred_at": at, "received_at": at, "attributes": {}, "raw": "",
    }  # fmt: skip


async def test_purge_leaves_nothing_older_except_incident_evidence(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    migrate(engine)
    ages = [0, 1, 29, 31, 45, 400]  # days old
    rows = [
        _event(i * 2 + j, NOW - timedelta(days=d, minutes=1), kind)
        for i, d in enumerate(ages)
        for j, kind in enumerate(("access", "gate"))
    ]
    with engine.begin() as conn:
        conn.execute(insert(events), rows)
        conn.execute(
            insert(quarantine),
            [
                {"received_at": NOW - timedelta(days=d), "topic": "t", "reason": "bad_json",
                 "detail": "", "raw": b"x", "size": 1}
                for d in ages
            ],
        )  # fmt: skip
        # an old incident keeps the gate record it was raised from
        conn.execute(
            insert(incidents),
            [{"source": "rule", "category": "vehicle", "severity": "P3", "title_zh": "t",
              "stage": "closed", "labels": {}, "event_ids": ["e9"], "assignees": [],
              "opened_at": NOW - timedelta(days=45), "updated_at": NOW - timedelta(days=45)}],
        )  # fmt: skip
    AuditLog(engine, b"k").append(AuditEntry(actor="a", action="x"), at=NOW - timedelta(days=400))

    job = RetentionJob(engine, days=30, clock=lambda: NOW)
    result = await job.run_once()

    cutoff = NOW - timedelta(days=30)
    with engine.connect() as conn:
        left = {r.event_id: r.occurred_at.replace(tzinfo=UTC) for r in conn.execute(select(events))}
        q_old = conn.execute(
            select(func.count()).select_from(quarantine).where(quarantine.c.received_at < cutoff)
        ).scalar()
        audits = conn.execute(select(func.count()).select_from(audit_log)).scalar()
    assert {e for e, at in left.items() if at < cutoff} == {"e9"}  # only incident evidence
    assert {f"e{n}" for n in range(6)} <= set(left)  # 0, 1 and 29 days old stay
    assert q_old == 0
    assert audits == 1  # the audit log is never purged
    assert result.events == 5 and result.kept_for_incidents == 1 and result.quarantine == 3
    # a second run has nothing left to do
    assert purge(engine, days=30, now=NOW).events == 0
