"""``lianfang simulate``: a simulated compound publishing Lianfang device JSON to any broker.

::

    lianfang simulate                                   # demo-compound → 127.0.0.1:1883
    lianfang simulate --rate 200 --duration 60          # load for a minute
    lianfang simulate --host mqtt.lan --username sim --password-env SIM_MQTT_PASSWORD
    lianfang simulate --no-mqtt --sia 127.0.0.1:12000 --sip 127.0.0.1:5060   # SIA and SIP only
    lianfang simulate --protocol http-push --url http://127.0.0.1:8000   # GA/T 1400 + ISAPI

Ctrl-C (or SIGTERM) stops cleanly: every device's retained status becomes ``offline``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass
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
        mqtt: bool = typer.Option(True, "--mqtt/--no-mqtt", help="Simulate the MQTT devices"),
        sia: str | None = typer.Option(
            None, "--sia", help="HOST:PORT of a SIA DC-09 receiver: simulate the site's panels"
        ),
        sip: str | None = typer.Option(
            None, "--sip", help="HOST:PORT of a GB/T 28181 SIP server: simulate its cameras"
        ),
        sip_server_id: str = typer.Option("31010800002000000001", "--sip-server-id"),
        sip_domain: str = typer.Option("3101080000", "--sip-domain"),
        protocol: str = typer.Option(
            "mqtt",
            "--protocol",
            help="mqtt: the Lianfang-JSON devices to a broker (with --sia/--sip: panels and "
            "GB/T 28181 cameras too); gat1400, isapi or http-push (both): the push devices to "
            "a gateway's API port (--url)",
        ),
        url: str = typer.Option(
            "http://127.0.0.1:8000", "--url", help="Gateway API base URL (http-push)"
        ),
        device_password_env: str = typer.Option(
            "LIANFANG_DEMO_DEVICE_PASSWORD",
            "--device-password-env",
            help="Environment variable holding the push devices' password, and of GB/T 28181 "
            "devices without their own password_env",
        ),
    ) -> None:
        """Simulate every registered device of a site (access, gates, perimeter, panic), over
        MQTT and — with --sia / --sip — the alarm panels and GB/T 28181 cameras too."""
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
        wire = _WireTargets(
            _address(sia, "--sia"), _address(sip, "--sip"), sip_server_id, sip_domain,
            device_password_env,
        )  # fmt: skip
        targets = [f"MQTT {host}:{port}"] if mqtt else []
        if wire.sia:
            panels = sum(1 for d in site_config.devices if d.sia)
            targets.append(f"{panels} SIA panel(s) → {wire.sia[0]}:{wire.sia[1]}")
        if wire.sip:
            cameras = sum(1 for d in site_config.devices if d.gb28181)
            targets.append(f"{cameras} GB/T 28181 camera(s) → {wire.sip[0]}:{wire.sip[1]}")
        if not targets:
            typer.echo("nothing to simulate: --no-mqtt without --sia or --sip", err=True)
            raise typer.Exit(1)
        typer.echo(
            f"simulating {site_config.name or site_config.id} ({len(site_config.devices)} devices)"
            f": {'; '.join(targets)}, at {rate:g} events/s, seed {seed}; Ctrl-C stops"
        )
        try:
            stats = asyncio.run(
                _run(site_config, host, port, rate, seed, duration, username, password, mqtt, wire)
            )
        except ConnectionError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from exc
        except KeyboardInterrupt:  # a second Ctrl-C during the clean stop
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        if stats is None:  # --no-mqtt: the panels' and cameras' own logs said what happened
            typer.echo("stopped")
            return
        by_kind: dict[str, int] = {}
        for (kind, _type), n in stats.by_type.items():
            by_kind[kind] = by_kind.get(kind, 0) + n
        kinds = ", ".join(f"{k} {n}" for k, n in sorted(by_kind.items()))
        scenarios = ", ".join(f"{k} {n}" for k, n in stats.scenarios.most_common()) or "none"
        typer.echo(
            f"stopped after {stats.elapsed_s:.1f}s: {stats.published} messages"
            f" ({stats.acknowledged} acknowledged); {kinds}; anomalies: {scenarios}"
        )


@dataclass(frozen=True)
class _WireTargets:
    sia: tuple[str, int] | None
    sip: tuple[str, int] | None
    sip_server_id: str
    sip_domain: str
    password_env: str


def _address(value: str | None, option: str) -> tuple[str, int] | None:
    if value is None:
        return None
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        typer.echo(f"{option} takes HOST:PORT, not {value!r}", err=True)
        raise typer.Exit(1)
    return host, int(port)


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
    mqtt: bool,
    wire: _WireTargets,
) -> SimulatorStats | None:
    from gateway.demo.simulator import run_simulator
    from gateway.demo.simulator.gb28181_camera import run_cameras
    from gateway.demo.simulator.sia_panel import run_panels

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
            pass
    side: list[asyncio.Future[object]] = []
    if wire.sia is not None:
        side.append(
            asyncio.ensure_future(run_panels(site, *wire.sia, rate=rate, seed=seed, stop=stop))
        )
    if wire.sip is not None:
        side.append(asyncio.ensure_future(run_cameras(
            site, *wire.sip, server_id=wire.sip_server_id, domain=wire.sip_domain, rate=rate,
            seed=seed, stop=stop, default_password_env=wire.password_env,
        )))  # fmt: skip
    if duration is not None:
        asyncio.get_running_loop().call_later(duration, stop.set)
    try:
        if not mqtt:
            await stop.wait()
            return None
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
        stop.set()
        await asyncio.gather(*side, return_exceptions=True)
        for sig in installed:
            loop.remove_signal_handler(sig)
