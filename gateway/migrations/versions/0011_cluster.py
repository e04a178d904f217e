"""cluster: workers and site leases with fencing tokens

Revision ID: 0011
Revises: 0010

Several ``lianfang run`` workers on one PostgreSQL share the sites through a lease per site,
renewed every few seconds, whose fencing token grows by one at every acquisition
(docs/cluster.md). The tables exist on SQLite too (one schema), but cluster mode refuses
SQLite at start-up.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_renewal", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_ttl_s", sa.Float(), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("writer_backlog", sa.Integer(), nullable=True),
        sa.Column("writer_lag_ms", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_workers"),
    )
    op.create_table(
        "site_leases",
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("worker_id", sa.String(length=64), nullable=True),
        sa.Column("token", sa.BigInteger(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("site", name="pk_site_leases"),
    )
    op.create_index("ix_site_leases_worker_id", "site_leases", ["worker_id"])


def downgrade() -> None:
    op.drop_index("ix_site_leases_worker_id", table_name="site_leases")
    op.drop_table("site_leases")
    op.drop_table("workers")
