"""Shared by the account and audit commands: the gateway's database and data directory
from ``--config`` (lianfang.yaml) or ``--database`` / ``--data-dir``."""

from __future__ import annotations

from pathlib import Path

import typer
from sqlalchemy import Engine

from gateway.audit.chain import AuditKeyError, AuditLog
from gateway.config import ConfigErrors

ConfigOpt = typer.Option(None, "--config", "-c", help="lianfang.yaml (database, data dir)")
DatabaseOpt = typer.Option(None, "--database", help="SQLAlchemy URL (overrides the config)")
DataDirOpt = typer.Option(
    None,
    "--data-dir",
    help="The gateway's data folder: audit.key, the audit checkpoint, and (without "
    "--database) lianfang.db. Default: the SQLite database's folder",
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
    if database is None and config is None and data_dir is not None:
        database = f"sqlite:///{data_dir / 'lianfang.db'}"  # the gateway's own, in its folder
    engine = make_engine(database or cfg.sqlite_url_resolved())
    migrate(engine)
    return engine, data_dir or _folder_of(database) or cfg.data_dir


def _folder_of(database: str | None) -> Path | None:
    """A SQLite database's folder: where the gateway keeps its keys beside it."""
    from sqlalchemy.engine import make_url

    if database is None:
        return None
    url = make_url(database)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database).resolve().parent


def open_audit(
    config: Path | None, database: str | None, data_dir: Path | None
) -> tuple[Engine, AuditLog]:
    """The database and its audit log (key and checkpoint file as the gateway has them);
    exit 2 when the key cannot be loaded. A non-SQLite ``--database`` named without
    ``--config`` or ``--data-dir`` has no known checkpoint file: it is checked without one."""
    from gateway.audit.chain import open_audit_log
    from gateway.config.settings import GatewayConfig, load_gateway_config

    engine, data = open_database(config, database, data_dir)
    cfg = load_gateway_config(config) if config is not None else GatewayConfig()
    known = config is not None or data_dir is not None or _folder_of(database) is not None
    known = known or database is None
    try:
        return engine, open_audit_log(engine, data, cfg.audit, checkpoints=known)
    except AuditKeyError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
