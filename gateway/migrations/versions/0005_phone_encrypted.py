"""grid people: phone number encrypted (AES-GCM), beside its keyed hash and masked form

Revision ID: 0005
Revises: 0004

Household contacts keep theirs in the ``contacts`` JSON (``phone_enc``), no column needed.
Rows imported before this revision have no encrypted number until the grid is imported or
the person saved again (the number itself was never stored).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("grid_people", schema=None) as batch_op:
        batch_op.add_column(sa.Column("phone_enc", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("grid_people", schema=None) as batch_op:
        batch_op.drop_column("phone_enc")
