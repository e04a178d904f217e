"""incidents: who acknowledged the incident (acked_by)

Revision ID: 0007_incidents_split
Revises: 0006

An incident acknowledged by a responder with authority over it is taken: its escalation
ladder stops (docs/incidents.md, "Acknowledgement and escalation"). ``acked_by`` says who
took it (a person id, or a console such as ``police-desk/beat-1``), so that a repeated
acknowledgement can say by whom it was taken.

Rows from before: ``acked_by`` is read from the timeline's acknowledgement at the
incident's ``acked_at``; deadlines still open on an acknowledged incident (the bug this
revision fixes let them escalate) are lifted.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_incidents_split"
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


def downgrade() -> None:
    with op.batch_alter_table("incidents", schema=None) as batch_op:
        batch_op.drop_column("acked_by")
