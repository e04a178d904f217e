"""Entry point: ``lianfang <command>``. Each command group lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="lianfang",
    help="Lianfang (联防) smart-community security gateway.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    # Imported here so `lianfang --help` stays fast and a broken optional part names itself.
    from gateway.cli import (
        audit_cmd,
        cameras_cmd,
        cluster_cmd,
        config_cmd,
        grid_cmd,
        profile_cmd,
        routes_cmd,
        rules_cmd,
        run_cmd,
        simulate_cmd,
        users_cmd,
    )

    app.add_typer(cameras_cmd.app, name="cameras")
    app.add_typer(cluster_cmd.app, name="cluster")
    app.add_typer(config_cmd.app, name="config")
    app.add_typer(profile_cmd.app, name="profile")
    app.add_typer(rules_cmd.app, name="rules")
    run_cmd.register(app)
    simulate_cmd.register(app)
    app.add_typer(routes_cmd.app, name="routes")
    grid_cmd.register(app)
    app.add_typer(users_cmd.app, name="users")
    app.add_typer(audit_cmd.app, name="audit")


_register()

if __name__ == "__main__":
    app()
