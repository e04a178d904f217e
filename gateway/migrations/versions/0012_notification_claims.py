"""notifications: claims, so several workers on one database send each row once

Revision ID: 0012
Revises: 0011

Issue 16 (cluster mode). A worker about to send an outbox row claims it first
(``claimed_by``, ``claim_until``) with one atomic ``UPDATE … WHERE unclaimed``; a worker that
dies mid-send leaves a claim that lapses at ``claim_until`` and the row is taken again by a
live worker's sweep (``gateway.notify.claims``). The partial index keeps the sweep for
passed acknowledgement deadlines cheap however many old rows the table holds.

(The lead re-chains this after 0011 at merge.)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

OPEN_DEADLINE = "ack_required AND acked_at IS NULL AND escalated_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_by", sa.String(64), nullable=True))
        batch_op.add_column(sa.Column("claim_until", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_notifications_open_deadline",
        "notifications",
        ["ack_deadline"],
        postgresql_where=sa.text(OPEN_DEADLINE),
        sqlite_where=sa.text(OPEN_DEADLINE),
    )


def downgrade() -> None:
    op.drop_index("ix_notifications_open_deadline", table_name="notifications")
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("claim_until")
        batch_op.drop_column("claimed_by")
