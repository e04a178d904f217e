"""devices: the push-protocol settings of an entry (protocols)

Revision ID: 0010
Revises: 0009

A device's ``sia:``, ``gb28181:`` and ``password_env`` (docs/web-console.md, "Devices")
had no column, so a device edited in the console lost them and a push device could no
longer authenticate. ``protocols`` holds them as JSON: NULL where nothing is recorded (rows
from before; the next start fills a console row's from its site-file entry), ``{}`` for an
entry without any.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("protocols", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_column("protocols")
