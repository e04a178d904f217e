"""incidents: who acknowledged the incident (acked_by); one open incident per group key

Revision ID: 0007
Revises: 0006

An incident acknowledged by a responder with authority over it is taken: its escalation
ladder stops (docs/incidents.md, "Acknowledgement and escalation"). ``acked_by`` says who
took it (a person id, or a console such as ``police-desk/beat-1``), so that a repeated
acknowledgement can say by whom it was taken.

Rows from before: ``acked_by`` is read from the timeline's acknowledgement at the
incident's ``acked_at``; deadlines still open on an acknowledged incident (the bug this
revision fixes let them escalate) are lifted.

Grouping, by constraint: ``ux_incidents_open_group`` is unique on (rule_id, group_key,
coalesce(site, '')) among open incidents (stages discovered, dispatched, handling,
feedback), on SQLite and PostgreSQL alike, so gateways sharing one database keep exactly
one open incident per group. Should a database hold several open incidents of one group
(the old look-up missed a signal without a site whose device is placed at one), the newest
keeps the group — it is the one new signals joined — and each older one is detached: its
group key is cleared and a ``comment`` timeline entry by ``system`` records the key and the
incident that carries it. The downgrade drops the index; detached keys stay cleared.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("acked_by", sa.String(length=100), nullable=True))
    op.execute(
        """
        UPDATE incidents SET acked_by = (
            SELECT t.actor FROM incident_timeline t
            WHERE t.incident_id = incidents.id AND t.action = 'acknowledge'
              AND t.at = incidents.acked_at
            ORDER BY t.id LIMIT 1
        )
        WHERE acked_at IS NOT NULL
        """
    )
    op.execute(
        """
        UPDATE notifications SET ack_required = false
        WHERE ack_required AND acked_at IS NULL AND incident_id IN (
            SELECT id FROM incidents WHERE acked_at IS NOT NULL
        )
        """
    )

    _detach_duplicate_groups()
    op.create_index(
        "ux_incidents_open_group",
        "incidents",
        ["rule_id", "group_key", sa.text("coalesce(site, '')")],
        unique=True,
        sqlite_where=sa.text(OPEN),
        postgresql_where=sa.text(OPEN),
    )


OPEN = "stage IN ('discovered', 'dispatched', 'handling', 'feedback')"


def _detach_duplicate_groups() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT id, rule_id, group_key, coalesce(site, '') AS site FROM incidents "
            f"WHERE rule_id IS NOT NULL AND group_key IS NOT NULL AND {OPEN} ORDER BY id DESC"
        )
    ).all()
    keeper: dict[tuple[str, str, str], int] = {}
    timeline = sa.table(
        "incident_timeline",
        sa.column("incident_id", sa.Integer),
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("actor", sa.String),
        sa.column("role", sa.String),
        sa.column("action", sa.String),
        sa.column("note", sa.Text),
        sa.column("attachments", sa.JSON),
        sa.column("data", sa.JSON),
    )
    now = datetime.now(UTC)
    for row in rows:
        key = (row.rule_id, row.group_key, row.site)
        if key not in keeper:
            keeper[key] = row.id
            continue
        bind.execute(
            sa.text("UPDATE incidents SET group_key = NULL WHERE id = :id"), {"id": row.id}
        )
        bind.execute(
            sa.insert(timeline),
            [
                {
                    "incident_id": row.id,
                    "at": now,
                    "actor": "system",
                    "role": "migration",
                    "action": "comment",
                    "note": f"incident {keeper[key]} carries this alarm's group "
                    f"({row.rule_id}, {row.group_key}); new signals join it",
                    "attachments": [],
                    "data": {"detached_group_key": row.group_key, "grouped_into": keeper[key]},
                }
            ],
        )


def downgrade() -> None:
    op.drop_index("ux_incidents_open_group", table_name="incidents")
    # Not batch mode: it would copy the table, which the timeline's foreign keys refuse on
    # SQLite; SQLite has dropped columns in place since 3.35.
    op.drop_column("incidents", "acked_by")
