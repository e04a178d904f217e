"""``lianfang audit verify``: walk the audit hash chain and name the first bad row."""

from __future__ import annotations

from pathlib import Path

import typer

from gateway.cli._db import ConfigOpt, DatabaseOpt, DataDirOpt, open_database

app = typer.Typer(help="Audit log 审计日志", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Audit log 审计日志 (keeps ``verify`` a subcommand)."""


@app.command("verify")
def verify(
    config: Path | None = ConfigOpt,
    database: str | None = DatabaseOpt,
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Exit 0 when every row verifies; 1 with the first altered, moved or missing row."""
    from gateway.audit.chain import AuditKeyError, AuditLog, load_audit_key

    engine, data = open_database(config, database, data_dir)
    try:
        audit = AuditLog(engine, load_audit_key(data))
    except AuditKeyError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from exc
    result = audit.verify()
    if result.ok:
        typer.echo(f"审计日志完好 / audit log intact: {result.checked} rows")
        return
    typer.echo(
        f"审计日志被篡改 / audit log tampered: first bad row {result.bad_row}: {result.reason} "
        f"({result.checked} rows verified before it)",
        err=True,
    )
    raise typer.Exit(1)
