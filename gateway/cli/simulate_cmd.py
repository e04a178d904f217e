"""``lianfang simulate``: a simulated compound publishing Lianfang device JSON to any broker.

::

    lianfang simulate                                   # demo-compound → 127.0.0.1:1883
    lianfang simulate --rate 200 --duration 60          # load for a minute
    lianfang simulate --host mqtt.lan --username sim --password-env SIM_MQTT_PASSWORD
    lianfang simulate --protocol http-push --url http://127.0.0.1:8000   # GA/T 1400 + ISAPI

Ctrl-C (or SIGTERM) stops cleanly: every device's retained status becomes ``offline``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gateway.config.errors import ConfigErrors
from gateway.paths import default_config_dir

if TYPE_CHECKING:
    from gateway.config.sites import SiteConfig
    from gateway.demo.simulator import SimulatorStats
    from gateway.demo.simulator.http_push import PushStats

DEFAULT_SITES_DIR = default_config_dir() / "sites"


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate(
        host: str = typer.Option("127.0.0.1", "--host", help="MQTT broker host"),
        port: int = typer.Option(1883, "--port", min=1, max=65535, help="MQTT broker port"),
        rate: float = typer.Option(
            5.0, "--rate", min=0.001, help="Ordinary events per second across the fleet"
        ),
        seed: int = typer.Option(1, "--seed", help="Same seed, same traffic"),
        duration: float | None = typer.Option(
            None, "--duration", min=0, help="Stop after this many seconds (default: Ctrl-C)"
        ),
        sites: Path = typer.Option(
            DEFAULT_SITES_DIR, "--sites", help="Folder of site files (*.yaml)"
        ),
        site: str = typer.Option("demo-compound", "--site", help="Site id to simulate"),
        username: str | None = typer.Option(None, "--username", help="MQTT username"),
        password_env: str | None = typer.Option(
            None, "--password-env", help="Environment variable holding the MQTT password"
        ),
        protocol: str = typer.Option(
            "mqtt",
            "--protocol",
            help="mqtt: the Lianfang-JSON devices to a broker; gat1400, isapi or http-push "
            "(both): the push devices to a gateway's API port (--url)",
        ),
        url: str = typer.Option(
            "http://127.0.0.1:8000", "--url", help="Gateway API base URL (http-push)"
        ),
        device_password_env: str = typer.Option(
            "LIANFANG_DEMO_DEVICE_PASSWORD",
            "--device-password-env",
            help="Environment variable holding the push devices' password (http-push)",
        ),
    ) -> None:
        """Simulate every registered device of a site (access, gates, perimeter, panic)."""
        from gateway.config.sites import load_sites

        if protocol not in ("mqtt", "gat1400", "isapi", "http-push"):
            typer.echo(f"unknown protocol {protocol!r} (mqtt, gat1400, isapi, http-push)", err=True)
            raise typer.Exit(2)

        try:
            registry = load_sites(sites)
        except ConfigErrors as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from exc
        site_config = registry.sites.get(site)
        if site_config is None:
            known = ", ".join(sorted(registry.sites)) or f"none in {sites}"
            typer.echo(f"unknown site {site!r} (known: {known})", err=True)
            raise typer.Exit(1)
        if protocol != "mqtt":
            device_password = os.environ.get(device_password_env)
            if not device_password:
                typer.echo(f"environment variable {device_password_env} is not set", err=True)
                raise typer.Exit(1)
            typer.echo(
                f"simulating the {protocol} devices of {site_config.id} → {url}; Ctrl-C stops"
            )
            push = asyncio.run(
                _run_push(site_config, url, device_password, rate, seed, duration, protocol)
            )
            typer.echo(
                f"stopped: {push.posted} pushes, {push.accepted} accepted, {push.refused} "
                f"refused, {push.failed} unanswered"
            )
            raise typer.Exit(0 if push.refused == 0 else 1)
        password = None
        if password_env:
            password = os.environ.get(password_env)
            if password is None:
                typer.echo(f"environment variable {password_env} is not set", err=True)
                raise typer.Exit(1)
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)-7s %(message)s")
        logging.getLogger("gateway.demo.simulator").setLevel(logging.INFO)
        typer.echo(
            f"simulating {site_config.name or site_config.id} ({len(site_config.devices)} devices)"
            f" → {host}:{port} at {rate:g} events/s, seed {seed}; Ctrl-C stops"
        )
        try:
            stats = asyncio.run(
                _run(site_config, host, port, rate, seed, duration, username, password)
            )
        except ConnectionError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
        except KeyboardInterrupt:  # a second Ctrl-C during the clean stop
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        by_kind: dict[str, int] = {}
        for (kind, _type), n in stats.by_type.items():
            by_kind[kind] = by_kind.get(kind, 0) + n
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items()))
        scenarios = ", ".join(f"{k} {n}" for k, n in stats.scenarios.most_common()) or "none"
        typer.echo(
            f"stopped after {stats.elapsed_s:.1f}s: {stats.published} messages"
            f" ({stats.acknowledged} acknowledged); {kinds}; anomalies: {scenarios}"
        )


async def _run_push(
    site: SiteConfig,
    url: str,
    password: str,
    rate: float,
    seed: int,
    duration: float | None,
    protocol: str,
) -> PushStats:
    from gateway.demo.simulator.http_push import run_push_devices

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows, not main thread
            loop.add_signal_handler(sig, stop.set)
    return await run_push_devices(
        site, url, password, rate=rate, seed=seed, stop=stop, duration=duration, protocol=protocol
    )


async def _run(
    site: SiteConfig,
    host: str,
    port: int,
    rate: float,
    seed: int,
    duration: float | None,
    username: str | None,
    password: str | None,
) -> SimulatorStats:
    from gateway.demo.simulator import run_simulator

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
            pass
    try:
        return await run_simulator(
            site,
            host=host,
            port=port,
            rate=rate,
            seed=seed,
            stop=stop,
            duration=duration,
            username=username,
            password=password,
        )
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
