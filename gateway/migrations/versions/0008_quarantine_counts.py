"""quarantine counts: every quarantined message counted per reason and minute

Revision ID: 0008
Revises: 0007

The quarantine keeps rows only up to a rate (gateway/ingest/quarantine.py); this table keeps
the exact count of every message, kept or not, per reason and clock minute.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quarantine_counts",
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("received", sa.BigInteger(), nullable=False),
        sa.Column("kept", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("minute", "reason", name="pk_quarantine_counts"),
    )


def downgrade() -> None:
    op.drop_table("quarantine_counts")
