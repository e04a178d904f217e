"""``lianfang rules``: validate rule files and replay recorded events through them."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from gateway.config import ConfigErrors

app = typer.Typer(help="Rules: validate rule files, replay recorded events.", no_args_is_help=True)

DEFAULT_DIR = Path("config/rules")


def _parse_until(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        value = None
    if value is None or value.tzinfo is None:
        typer.echo(
            "--until needs an ISO time with a zone, e.g. 2025-01-06T22:00:00+08:00", err=True
        )
        raise typer.Exit(2)
    return value


@app.command("check")
def check(
    path: Annotated[Path, typer.Argument(help="Rule directory or file")] = DEFAULT_DIR,
) -> None:
    """Validate rule files; print each error with file, rule id and key path."""
    from rules.loader import load_rules

    try:
        ruleset = load_rules(path)
    except ConfigErrors as exc:
        for err in exc.errors:
            typer.echo(str(err), err=True)
        typer.echo(f"{len(exc.errors)} error(s)", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"ok: {len(ruleset.rules)} rules in {len(ruleset.files)} file(s)")


@app.command("test")
def test(
    rules: Annotated[Path, typer.Argument(help="Rule directory or file")],
    events: Annotated[Path, typer.Argument(help="Recorded events, one Event JSON per line")],
    expect: Annotated[Path | None, typer.Option(help="Expected signals (JSONL) to compare")] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Advance the virtual clock to this time at the end (ISO time with zone)"),
    ] = None,
    sites: Annotated[Path | None, typer.Option(help="Sites directory for device labels")] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", "-c", help="lianfang.yaml: its rules.late_tolerance_s, as the gateway"
        ),
    ] = None,
    tolerance: Annotated[
        float | None,
        typer.Option(help="Late-event tolerance, seconds (default: the config's, else 30)"),
    ] = None,
    as_recorded: Annotated[
        bool,
        typer.Option(
            "--as-recorded",
            help="Judge lateness by device time alone: replay captured events with their own "
            "timestamps on purpose (the gateway also counts how late they arrived)",
        ),
    ] = False,
    full: Annotated[bool, typer.Option(help="Print whole signals, not the brief")] = False,
) -> None:
    """Replay EVENTS through RULES on a virtual clock, with the live gateway's policy for late
    events; print or compare the signals."""
    from gateway.config.settings import GatewayConfig, load_gateway_config
    from rules.engine import Engine, EngineSettings
    from rules.labels import labels_from_registry
    from rules.loader import load_rules
    from rules.replay import compare, read_events, read_expected, replay

    end = _parse_until(until)
    try:
        gateway = load_gateway_config(config) if config is not None else GatewayConfig()
        ruleset = load_rules(rules)
        recorded = read_events(events)
        wanted = read_expected(expect) if expect is not None else None
        lookup = None
        if sites is not None:
            from gateway.config.sites import load_sites

            lookup = labels_from_registry(load_sites(sites))
    except ConfigErrors as exc:
        for err in exc.errors:
            typer.echo(str(err), err=True)
        raise typer.Exit(1) from None
    settings = EngineSettings(
        late_tolerance_s=gateway.rules.late_tolerance_s if tolerance is None else tolerance,
        judge_arrival=not as_recorded,
        timezone=gateway.timezone,
    )
    engine = Engine(ruleset, settings, lookup)
    signals = replay(engine, recorded, end)
    if engine.counters.late:
        typer.echo(
            f"note: {engine.counters.late} late event(s) were used by panic and absence rules "
            f"only, as the live gateway does (tolerance {settings.late_tolerance_s:g} s; "
            "--as-recorded judges by device time alone)",
            err=True,
        )
    if wanted is None:
        for s in signals:
            line = s.model_dump(mode="json") if full else s.brief()
            typer.echo(json.dumps(line, ensure_ascii=False))
        return
    problems = compare(signals, wanted)
    if problems:
        for p in problems:
            typer.echo(p, err=True)
        typer.echo(f"FAIL: {len(problems)} difference(s)", err=True)
        raise typer.Exit(1)
    typer.echo(f"ok: {len(signals)} signal(s) as expected")
