"""Shared by the account and audit commands: the gateway's database and data directory
from ``--config`` (lianfang.yaml) or ``--database`` / ``--data-dir``."""

from __future__ import annotations

from pathlib import Path

import typer
from sqlalchemy import Engine

from gateway.config import ConfigErrors

ConfigOpt = typer.Option(None, "--config", "-c", help="lianfang.yaml (database, data dir)")
DatabaseOpt = typer.Option(None, "--database", help="SQLAlchemy URL (overrides the config)")
DataDirOpt = typer.Option(
    None, "--data-dir", help="Data folder (audit.key; without --config, also lianfang.db)"
)


def open_database(
    config: Path | None, database: str | None, data_dir: Path | None
) -> tuple[Engine, Path]:
    from gateway.config.settings import GatewayConfig, load_gateway_config
    from gateway.storage.db import make_engine, migrate

    try:
        if config is not None:
            cfg = load_gateway_config(config)
        else:  # the demo's layout: the database inside the data folder
            cfg = GatewayConfig(data_dir=data_dir) if data_dir is not None else GatewayConfig()
    except ConfigErrors as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    engine = make_engine(database or cfg.sqlite_url_resolved())
    migrate(engine)
    return engine, data_dir or cfg.data_dir
