"""Alembic environment: runs on the connection handed over by gateway.storage.db.migrate,
or on ``sqlalchemy.url`` when invoked through the alembic CLI."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

import gateway.cluster.tables
import gateway.grid.tables
import gateway.incidents.tables
import gateway.notify.tables  # noqa: F401  (every table on the shared metadata, for autogenerate)
from gateway.storage.tables import metadata

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///data/lianfang.db")
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
