"""``lianfang audit verify``: walk the audit hash chain and name the first bad row; compare
its end with the signed checkpoints of the head (the file, and a line copied from the log)."""

from __future__ import annotations

from pathlib import Path

import typer

from gateway.cli._db import ConfigOpt, DatabaseOpt, DataDirOpt, open_audit

app = typer.Typer(help="Audit log 审计日志", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """Audit log 审计日志 (keeps ``verify`` a subcommand)."""


@app.command("verify")
def verify(
    config: Path | None = ConfigOpt,
    database: str | None = DatabaseOpt,
    data_dir: Path | None = DataDirOpt,
    head: str | None = typer.Option(
        None,
        "--head",
        help="A checkpoint copied from the log (the line with 'audit checkpoint {…}')",
    ),
) -> None:
    """Exit 0 when every row verifies and the chain reaches the last checkpoint; 1 with the
    first altered, moved or missing row (rows cut from the end included)."""
    from gateway.audit.checkpoint import parse_log_line

    _engine, audit = open_audit(config, database, data_dir)
    try:
        expect = parse_log_line(head) if head else None
    except (ValueError, KeyError, TypeError) as exc:
        typer.echo(f"--head: not a checkpoint: {exc}", err=True)
        raise typer.Exit(2) from exc
    result = audit.verify(expect=expect)
    if result.ok:
        typer.echo(f"审计日志完好 / audit log intact: {result.checked} rows; {result.checkpoint}")
        return
    where = f"first bad row {result.bad_row}: " if result.bad_row is not None else ""
    typer.echo(
        f"审计日志被篡改 / audit log tampered: {where}{result.reason} "
        f"({result.checked} rows verified before it)",
        err=True,
    )
    raise typer.Exit(1)


@app.command("checkpoint")
def checkpoint(
    config: Path | None = ConfigOpt,
    database: str | None = DatabaseOpt,
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Print the signed checkpoint of the current head (to keep a copy elsewhere) and write
    it to the checkpoint file."""
    import json

    _engine, audit = open_audit(config, database, data_dir)
    if audit.checkpoints is None:
        raise typer.Exit(2)
    row_id, row_hash = audit.head()
    if row_id:
        audit.checkpoints.record(row_id, row_hash)
    typer.echo(json.dumps(audit.checkpoints.sign(row_id, row_hash).to_json()))
