"""``lianfang config check PATH``: validate every piece of configuration at once."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gateway.config.errors import ConfigError, ConfigErrors

if TYPE_CHECKING:
    from gateway.config.settings import SmsConfig

app = typer.Typer(help="Configuration tools.", no_args_is_help=True)


def _sms_summary(sms: SmsConfig) -> str:
    if sms.http is None:
        return "sms: log driver (recipient ids logged, nothing sent)"
    http = sms.http
    auth = ""
    if http.auth_env:
        unset = "" if os.environ.get(http.auth_env) is not None else ", not set here"
        auth = f", {http.auth_header or 'Authorization'} from ${http.auth_env}{unset}"
    return f"sms: http gateway {http.url}{auth}"


def check_all(config_path: Path) -> tuple[list[str], list[ConfigError]]:
    """Validate the gateway file, profiles, sites, rules and cameras. Returns (summary lines, errors)."""
    from device_adapters.profiles.loader import load_profiles
    from gateway.config.settings import load_gateway_config
    from gateway.config.sites import SiteRegistry, load_sites

    summary: list[str] = []
    errors: list[ConfigError] = []
    registry: SiteRegistry | None = None
    try:
        config = load_gateway_config(config_path)
    except ConfigErrors as exc:
        return summary, exc.errors
    summary.append(f"gateway: {config_path} (broker {config.mqtt.host}:{config.mqtt.port})")
    try:  # as `run` meets it: the broker password is read at start
        config.mqtt.password()
    except ConfigErrors as exc:
        errors.extend(ConfigError(str(config_path), e.key_path, e.message) for e in exc.errors)
    summary.append(_sms_summary(config.sms))
    if config.cluster.enabled:
        from gateway.cli.startup import StartupError, check_cluster_database

        try:  # as `run` meets it (docs/cluster.md)
            check_cluster_database(True, config.database.url)
            c = config.cluster
            summary.append(
                f"cluster: worker {c.worker_id or '<host>-<pid>'}, lease {c.lease_ttl_s:g}s "
                f"renewed every {c.renew_period_s:.3g}s"
            )
        except StartupError as exc:
            errors.append(ConfigError(str(config_path), "cluster.enabled", str(exc)))
    try:
        profiles = load_profiles(config.profiles_dir)
        summary.append(f"profiles: {len(profiles)} in {config.profiles_dir}")
    except ConfigErrors as exc:
        errors.extend(exc.errors)
    try:
        registry = load_sites(config.sites_dir)
        summary.append(
            f"sites: {len(registry.sites)} with {len(registry)} devices in {config.sites_dir}"
        )
    except ConfigErrors as exc:
        errors.extend(exc.errors)
    try:
        from rules.loader import load_rules

        ruleset = load_rules(config.rules_dir)
        summary.append(f"rules: {len(ruleset.rules)} in {config.rules_dir}")
    except ConfigErrors as exc:
        errors.extend(exc.errors)
    try:
        from gateway.grid.model import load_grid
        from gateway.incidents.runtime import rule_label_keys
        from gateway.routing.model import load_routing

        # The grid is placed on the sites: without valid sites only the routing file is checked.
        grid = (
            load_grid(config.grid_dir, registry)
            if registry is not None and config.grid_dir.is_dir()
            else None
        )
        routing = load_routing(config.routing_file, label_keys=rule_label_keys(config.rules_dir))
        summary.append(
            f"grid: {config.grid_dir}{'' if grid else ' (absent)'}; routing: {config.routing_file} "
            f"({len(routing.webhooks)} webhooks)"
        )
    except ConfigErrors as exc:
        errors.extend(exc.errors)
    try:
        from device_adapters.onvif import load_cameras
        from gateway.live import load_video_config

        onvif = load_cameras(config.onvif_file).cameras if config.onvif_file.is_file() else []
        video = load_video_config(config.cameras_file)
        summary.append(
            f"cameras: {len(onvif)} ONVIF event sources, {len(video.cameras)} streams, "
            f"{len(video.fences)} virtual fences"
        )
    except ConfigErrors as exc:
        errors.extend(exc.errors)
    return summary, errors


def check_services(config_path: Path, timeout_s: float = 2.0) -> list[str]:
    """What `run` would meet on the network: the broker and (PostgreSQL) database, each
    reachable or not. Unreachable is a warning: `run` starts and keeps retrying."""
    import socket

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from gateway.config.settings import load_gateway_config

    config = load_gateway_config(config_path)
    warnings: list[str] = []
    broker = f"{config.mqtt.host}:{config.mqtt.port}"
    try:
        socket.create_connection((config.mqtt.host, config.mqtt.port), timeout=timeout_s).close()
    except OSError as exc:
        warnings.append(
            f"MQTT broker {broker} unreachable: {exc.strerror or exc} "
            "(run starts anyway and retries; nothing is received until it answers)"
        )
    url = make_url(config.sqlite_url_resolved())
    if url.get_backend_name() != "sqlite":
        engine = create_engine(url, connect_args={"connect_timeout": int(timeout_s) or 1})
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # the driver's own error types vary
            reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200]
            warnings.append(f"database {url.render_as_string(hide_password=True)}: {reason}")
        finally:
            engine.dispose()
    return warnings


@app.command("check")
def check(
    path: Path = typer.Argument(Path("config/lianfang.yaml"), help="Gateway configuration file"),
    offline: bool = typer.Option(
        False, "--offline", help="Do not try to reach the broker and the database"
    ),
) -> None:
    """Validate configuration, secrets and services as `run` would meet them; errors name the
    file, the key path and what is wrong."""
    if not path.exists():
        typer.echo(f"{path}: file not found", err=True)
        raise typer.Exit(2)
    summary, errors = check_all(path)
    for line in summary:
        typer.echo(f"ok    {line}")
    if not errors and not offline:
        for warning in check_services(path):
            typer.echo(f"warn  {warning}")
    for err in errors:
        typer.echo(f"error {err}", err=True)
    if errors:
        typer.echo(f"{len(errors)} error(s)", err=True)
        raise typer.Exit(1)
    typer.echo("configuration is valid")
