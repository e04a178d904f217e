"""audit log: index on target (the path a row is about)

Revision ID: 0006
Revises: 0005

The incident page reads the audit rows of one incident by path (``target = …/incidents/7``
or a path below it), and phone reveals are looked up by path too. On PostgreSQL the index
uses ``varchar_pattern_ops`` so that a prefix ``LIKE '…/incidents/7/%'`` is served by it
whatever the database's collation (equality is served too); SQLite's index is a plain one,
which serves equality and the case-sensitive prefix ``GLOB`` (``gateway.audit.tables
.target_is_or_under`` writes the query for each).
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_audit_log_target",
        "audit_log",
        ["target"],
        postgresql_ops={"target": "varchar_pattern_ops"},
    )


def downgrade() -> None:
    op.drop_index("ix_audit_log_target", table_name="audit_log")
