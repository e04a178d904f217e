"""``lianfang import``: load the grid (YAML/CSV) into the database, replacing it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gateway.config import ConfigErrors


def register(app: typer.Typer) -> None:
    @app.command("import")
    def import_(
        path: Annotated[Path, typer.Argument(help="Grid directory (YAML + CSV) or one file")],
        config: Annotated[
            Path | None, typer.Option("--config", "-c", help="lianfang.yaml (database, sites)")
        ] = None,
        database: Annotated[str | None, typer.Option(help="SQLAlchemy URL (overrides)")] = None,
        sites: Annotated[Path | None, typer.Option(help="Sites directory")] = None,
        check: Annotated[
            bool, typer.Option("--check", help="Validate only, write nothing")
        ] = False,
    ) -> None:
        """Validate the grid and replace the one in the database (one transaction). Errors
        name the file and key path (or CSV row and column)."""
        from gateway.config.settings import load_gateway_config
        from gateway.config.sites import load_sites
        from gateway.grid.model import load_grid
        from gateway.grid.store import import_grid
        from gateway.privacy import KEY_ENV, PiiKeyError, load_pii_key, set_pii_key
        from gateway.storage.db import make_engine, migrate

        try:
            cfg = load_gateway_config(config) if config is not None else None
            sites_dir = sites or (cfg.sites_dir if cfg else Path("config/sites"))
            registry = load_sites(sites_dir) if sites_dir.is_dir() else None
            grid = load_grid(path, registry)
        except ConfigErrors as exc:
            for err in exc.errors:
                typer.echo(str(err), err=True)
            typer.echo(f"{len(exc.errors)} error(s); nothing imported", err=True)
            raise typer.Exit(1) from None
        summary = (
            f"{len(grid.cells)} cells, {len(grid.beats)} beats, "
            f"{len(grid.neighbour_groups)} neighbour groups, "
            f"{len(grid.households)} households, {len(grid.people)} people"
        )
        if check:
            typer.echo(f"ok: {summary}")
            return
        url = database or (cfg.sqlite_url_resolved() if cfg else None)
        if url is None:
            typer.echo("give --config lianfang.yaml or --database URL", err=True)
            raise typer.Exit(2)
        # Phone references and encrypted numbers must use the gateway's own key, or the
        # gateway can neither match nor read them.
        try:
            set_pii_key(load_pii_key(cfg.data_dir if cfg is not None else None))
        except PiiKeyError as exc:
            typer.echo(
                f"{exc}: give --config (its data directory holds pii.key) or set "
                f"{KEY_ENV}, so phone numbers are stored under the gateway's key",
                err=True,
            )
            raise typer.Exit(2) from None
        engine = make_engine(url)
        try:
            migrate(engine)
            import_grid(engine, grid)
        finally:
            engine.dispose()
        typer.echo(f"imported: {summary}")
