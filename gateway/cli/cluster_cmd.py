"""``lianfang cluster status``: the workers of a cluster, the sites each owns, lag per site."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gateway.cli._db import ConfigOpt, DatabaseOpt

if TYPE_CHECKING:
    from gateway.cluster.status import LeaseRow

app = typer.Typer(help="Several workers on one PostgreSQL (docs/cluster.md).", no_args_is_help=True)


@app.command("status")
def status(
    config: Path | None = ConfigOpt,
    database: str | None = DatabaseOpt,
    as_json: bool = typer.Option(False, "--json", help="One JSON document instead of a table"),
) -> None:
    """Workers (id, host, started, last renewal), the sites each owns with their fencing
    tokens, the sites nobody owns, and lag per site (age of its newest stored event)."""
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.cli._db import open_database
    from gateway.cluster.status import read_status

    engine, _ = open_database(config, database, None)
    try:
        if engine.dialect.name != "postgresql":
            typer.echo(
                "集群模式需要 PostgreSQL / no cluster here: the database is "
                f"{engine.dialect.name} (cluster mode needs PostgreSQL)",
                err=True,
            )
            raise typer.Exit(2)
        with engine.connect() as conn:
            report = read_status(conn)
    except SQLAlchemyError as exc:
        typer.echo(f"数据库不可用 / database unavailable: {exc.__class__.__name__}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()
    if as_json:
        typer.echo(json.dumps(report.as_json(), ensure_ascii=False, indent=2))
        return
    typer.echo(f"集群 cluster at {_t(report.now)} (database clock)")
    live = sum(w.state == "live" for w in report.workers)
    typer.echo(f"工作进程 workers: {live} live of {len(report.workers)}")
    for w in report.workers:
        load = ""
        if w.writer_backlog is not None:
            load = f", writer backlog {w.writer_backlog} lag {w.writer_lag_ms or 0:.0f} ms"
        typer.echo(
            f"  {w.id} [{w.state}] host {w.host} pid {w.pid}, started {_t(w.started_at)}, "
            f"last renewal {_t(w.last_renewal)}{load}; {len(w.sites)} sites"
        )
        for s in w.sites:
            typer.echo(
                f"    {s.site}  token {s.token}  lease until {_t(s.expires_at)}  lag {_age(s)}"
            )
    typer.echo(f"无人负责 unowned sites: {len(report.unowned)}")
    for s in report.unowned:
        typer.echo(f"    {s.site}  token {s.token}  lag {_age(s)}")


def _t(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


def _age(site: LeaseRow) -> str:
    age = site.newest_event_age_s
    return f"{age:.1f}s" if age is not None else "no events"
