"""``lianfang routes``: check ``routing.yaml`` and show who an incident would reach."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gateway.config import ConfigErrors

app = typer.Typer(
    help="Routing: validate the routing tree, test where incidents go.", no_args_is_help=True
)

KEYS = (
    "category",
    "severity",
    "source",
    "cell",
    "community",
    "site",
    "rule_id",
    "device",
    "household",
)


def _fail(exc: ConfigErrors) -> typer.Exit:
    for err in exc.errors:
        typer.echo(str(err), err=True)
    typer.echo(f"{len(exc.errors)} error(s)", err=True)
    return typer.Exit(1)


@app.command("test")
def test(
    pairs: Annotated[
        list[str],
        typer.Argument(
            help="key=value: category, severity, source, "
            "cell, community, site, rule_id, device, "
            "household, or label.<key>"
        ),
    ],
    routing: Annotated[Path, typer.Option(help="routing.yaml")] = Path("config/routing.yaml"),
    grid: Annotated[Path, typer.Option(help="Grid directory")] = Path("config/grid"),
    sites: Annotated[Path, typer.Option(help="Sites directory")] = Path("config/sites"),
    rules: Annotated[Path, typer.Option(help="Rule directory (label keys)")] = Path("config/rules"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Print the matching routes and the receivers an incident would reach, e.g.
    ``lianfang routes test category=panic cell=shifan-01``."""
    from gateway.config.sites import SiteRegistry, load_sites
    from gateway.grid.directory import GridDirectory
    from gateway.grid.model import load_grid
    from gateway.incidents.runtime import rule_label_keys
    from gateway.routing import RouteInput, explain, load_routing

    values: dict[str, str] = {}
    labels: dict[str, str] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq:
            typer.echo(f"expected key=value, got {pair!r}", err=True)
            raise typer.Exit(2)
        if key.startswith("label."):
            labels[key.removeprefix("label.")] = value
        elif key in KEYS:
            values[key] = value
        else:
            typer.echo(
                f"unknown key {key!r}; use one of {', '.join(KEYS)} or label.<key>", err=True
            )
            raise typer.Exit(2)
    if "category" not in values:
        typer.echo("category=… is required", err=True)
        raise typer.Exit(2)
    for folder, option, what in ((grid, "--grid", "cells, roles and households"),
                                 (sites, "--sites", "devices and compounds")):  # fmt: skip
        if not folder.exists():
            typer.echo(
                f"warning: no {folder} (looked in {folder.resolve()}): {what} cannot be "
                f"resolved; run from the folder that holds config/ or pass {option}",
                err=True,
            )
    try:
        registry = load_sites(sites) if sites.is_dir() else SiteRegistry([])
        grid_cfg = load_grid(grid, registry) if grid.exists() else None
        directory = (
            GridDirectory.from_config(grid_cfg, registry)
            if grid_cfg
            else GridDirectory(registry=registry)
        )
        cfg = load_routing(
            routing,
            label_keys=rule_label_keys(rules),
            cells={a.id for a in directory.cells()} or None,
        )
    except ConfigErrors as exc:
        raise _fail(exc) from None
    loc = directory.locate(
        site=values.get("site"),
        device_id=values.get("device"),
        household=values.get("household"),
        cell=values.get("cell"),
    )
    x = RouteInput(
        values["category"],
        values.get("severity", "P1"),
        values.get("source", "rule"),
        loc.cell,
        values.get("community", loc.community),
        loc.site,
        values.get("rule_id"),
        labels,
    )
    found = explain(cfg, directory, x, loc)
    if as_json:
        typer.echo(json.dumps(found, ensure_ascii=False, indent=2))
        return
    for r in found["route_timing"]:
        typer.echo(
            f"route {r['path']}: {', '.join(r['receivers'])} "
            f"(group_wait {r['group_wait_s']:g}s, repeat {r['repeat_interval_s']:g}s)"
        )
    where = ", ".join(
        f"{k}={v}"
        for k, v in (
            ("cell", loc.cell),
            ("community", loc.community),
            ("beats", ",".join(loc.beats) or None),
            ("group", loc.group),
        )
        if v
    )
    typer.echo(f"location: {where or 'unknown'}")
    for d in found["deliveries"]:
        ack = " ack" if d["ack"] else ""
        typer.echo(f"  {d['receiver']:16} {d['recipient']:32} {d['name']} [{d['channel']}]{ack}")
    for u in found["unresolved"]:
        typer.echo(f"  {u['receiver']:16} nobody ({u['target']}): {u['reason']}")
    if not found["deliveries"]:
        typer.echo("no recipients resolved")


@app.command("check")
def check(
    routing: Annotated[Path, typer.Argument(help="routing.yaml")] = Path("config/routing.yaml"),
    rules: Annotated[Path, typer.Option(help="Rule directory (label keys)")] = Path("config/rules"),
) -> None:
    """Validate routing.yaml; print each error with file and key path."""
    from gateway.incidents.runtime import rule_label_keys
    from gateway.routing import load_routing

    try:
        cfg = load_routing(routing, label_keys=rule_label_keys(rules))
    except ConfigErrors as exc:
        raise _fail(exc) from None
    typer.echo(f"ok: {len(cfg.receivers)} receivers, {len(cfg.webhooks)} webhooks")
