"""Claims on outbox rows, so that several workers on one PostgreSQL send each row once and
fire each escalation once (issue 16, cluster mode; docs/cluster.md).

- A worker about to send a row claims it: one ``UPDATE … WHERE`` unclaimed (or the claim
  lapsed) ``RETURNING``. PostgreSQL re-checks the condition on the locked row, so of two
  workers racing for a row exactly one gets it.
- A sweep takes the due rows nobody holds, with ``SELECT … FOR UPDATE SKIP LOCKED`` and the
  claim in the same transaction: rows queued by another worker, retries, and rows whose
  worker died mid-send (its claim lapses at ``claim_until``).
- Only the claim's holder records the attempt; recording clears the claim.
- Passed acknowledgement deadlines are found by the sweep too; the escalation itself is
  claimed by ``escalated_at`` in the escalating transaction (``incidents.escalation``).

Blocking functions, run in a thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, or_, select, update

from gateway.incidents.tables import incidents
from gateway.notify.tables import notifications

SENDABLE = ("pending", "retry")


def _claimable(now: datetime) -> Any:
    n = notifications.c
    return (
        n.status.in_(SENDABLE),
        or_(n.next_attempt_at.is_(None), n.next_attempt_at <= now),
        or_(n.claim_until.is_(None), n.claim_until < now),
    )


def claim_one(
    engine: Engine, notification_id: int, worker: str, now: datetime, until: datetime
) -> int | None:
    """Claim the row for ``worker`` until ``until``: its attempts so far, or None when it is
    sent, cancelled, not due, or held by a live claim."""
    n = notifications.c
    with engine.begin() as conn:
        got = conn.execute(
            update(notifications)
            .where(n.id == notification_id, *_claimable(now))
            .values(claimed_by=worker, claim_until=until)
            .returning(n.attempts)
        ).first()
    return None if got is None else int(got.attempts)


def with_incident_place() -> Select[Any]:
    """Outbox rows with their incident's place (what ``dispatcher.row_to_outgoing`` reads)."""
    i = incidents.c
    return select(
        notifications,
        i.cell.label("incident_cell"),
        i.site.label("incident_site"),
        i.reporter.label("incident_reporter"),
    ).join(incidents, i.id == notifications.c.incident_id)


def claim_due(
    engine: Engine, worker: str, now: datetime, until: datetime, limit: int = 100
) -> Sequence[Any]:
    """Claim up to ``limit`` due rows that nobody holds (oldest due first) and return them
    with their incident's place (``dispatcher.row_to_outgoing`` reads them)."""
    n = notifications.c
    with engine.begin() as conn:
        rows = conn.execute(
            with_incident_place()
            .where(*_claimable(now))
            .order_by(n.next_attempt_at, n.id)
            .limit(limit)
            .with_for_update(of=notifications, skip_locked=True)
        ).all()
        if rows:
            conn.execute(
                update(notifications)
                .where(n.id.in_([r.id for r in rows]))
                .values(claimed_by=worker, claim_until=until)
            )
    return rows


def due_deadlines(engine: Engine, now: datetime, limit: int = 100) -> list[int]:
    """Notifications whose acknowledgement deadline passed and still counts."""
    n = notifications.c
    with engine.connect() as conn:
        return [
            int(nid)
            for nid in conn.execute(
                select(n.id)
                .where(
                    n.ack_required.is_(True),
                    n.acked_at.is_(None),
                    n.escalated_at.is_(None),
                    n.ack_deadline <= now,
                    n.status != "cancelled",
                )
                .order_by(n.ack_deadline)
                .limit(limit)
            ).scalars()
        ]
