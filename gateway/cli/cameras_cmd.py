"""``lianfang cameras``: find ONVIF cameras on the local segment and ask one what it supports.

::

    lianfang cameras discover --yes-send-multicast          # WS-Discovery, TTL 1, 3 s
    lianfang cameras probe http://192.168.1.64 --username admin --password-env CAM_PW
    lianfang cameras probe cam-north --config config/onvif.yaml
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import typer

from gateway.config.errors import ConfigErrors
from gateway.paths import default_config_dir

app = typer.Typer(
    help="ONVIF cameras: discover on the local segment, probe one camera.",
    no_args_is_help=True,
)
DEFAULT_CAMERAS = default_config_dir() / "onvif.yaml"
ONVIF_NVT = ("http://www.onvif.org/ver10/network/wsdl", "NetworkVideoTransmitter")


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(1)


@app.command("discover")
def discover(
    yes: bool = typer.Option(
        False, "--yes-send-multicast", help="Required: send a WS-Discovery probe (UDP multicast)"
    ),
    timeout: float = typer.Option(3.0, "--timeout", min=0.5, max=30, help="Seconds to listen"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Probe the local network segment (multicast TTL 1) for ONVIF devices."""
    if not yes:
        raise _fail(
            "discover sends a UDP multicast probe to 239.255.255.250:3702 on this machine's "
            "local segment (TTL 1, never routed). Re-run with --yes-send-multicast."
        )
    from wsdiscovery.discovery import ThreadedWSDiscovery
    from wsdiscovery.qname import QName

    wsd = ThreadedWSDiscovery(ttl=1)
    wsd.start()
    try:
        services = wsd.searchServices(types=[QName(*ONVIF_NVT)], timeout=timeout)
    finally:
        wsd.stop()
    found = [
        {
            "xaddrs": [str(x) for x in service.getXAddrs()][:8],
            "scopes": [str(s.getValue()) for s in service.getScopes()][:16],
            "epr": str(service.getEPR()),
        }
        for service in services
    ]
    if as_json:
        typer.echo(json.dumps(found, ensure_ascii=False, indent=2))
        return
    if not found:
        typer.echo("no ONVIF devices answered")
        return
    for item in found:
        typer.echo(", ".join(item["xaddrs"]) or item["epr"])
        names = [s.rsplit("/", 1)[-1] for s in item["scopes"] if "/name/" in s or "/hardware/" in s]
        if names:
            typer.echo(f"    {' '.join(names)}")


@app.command("probe")
def probe(
    target: str = typer.Argument(..., help="http(s)://host[:port] or a camera id from --config"),
    config: Path = typer.Option(DEFAULT_CAMERAS, "--config", help="onvif.yaml (for an id)"),
    username: str = typer.Option("admin", "--username", help="ONVIF user (with a URL)"),
    password_env: str | None = typer.Option(
        None, "--password-env", help="Environment variable holding the password (with a URL)"
    ),
    allow_foreign_hosts: bool = typer.Option(
        False, "--allow-foreign-hosts", help="Follow addresses the camera gives on other hosts"
    ),
    timeout: float = typer.Option(10.0, "--timeout", min=0.5, max=120, help="Per request"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
) -> None:
    """Log in to one camera and show what it supports: device, services, profiles, URIs."""
    from device_adapters.onvif.config import CameraConfig, load_cameras

    try:
        if "://" in target:
            if password_env and password_env not in os.environ:
                raise _fail(f"environment variable {password_env} is not set")
            cam = CameraConfig(
                id="probe", site="probe", url=target, username=username,
                password_env=password_env, allow_foreign_hosts=allow_foreign_hosts,
                request_timeout_s=timeout, pull_timeout_s=min(5.0, timeout),
                renew_margin_s=max(6.0, min(5.0, timeout) + 1),
            )  # fmt: skip
        else:
            cams = {c.id: c for c in load_cameras(config).cameras}
            if target not in cams:
                raise _fail(f"{config}: no camera with id {target!r}")
            cam = cams[target]
        password = cam.password(str(config))
    except ConfigErrors as exc:
        raise _fail(str(exc)) from None
    except ValueError as exc:  # pydantic validation of a URL given on the command line
        raise _fail(f"{target}: {exc}") from None
    code, out = asyncio.run(_probe(cam, password))
    if as_json:
        typer.echo(json.dumps(out, ensure_ascii=False, indent=2, default=str))
    else:
        _print_report(out)
    if code:
        raise typer.Exit(code)


async def _probe(cam: Any, password: str | None) -> tuple[int, dict[str, Any]]:
    from device_adapters.onvif.client import OnvifClient
    from device_adapters.onvif.health import classify

    client = OnvifClient(cam, password)
    try:
        try:
            await client.connect()
        except Exception as exc:
            state, detail = classify(exc)
            return 2, {"camera": cam.id, "state": state.value, "error": detail}
        report = await client.report()
        return 0, {"state": "ok", **asdict(report)}
    finally:
        await client.close()


def _print_report(out: dict[str, Any]) -> None:
    if out.get("state") != "ok":
        typer.echo(f"{out['state']}: {out['error']}", err=True)
        return
    typer.echo(
        f"{out['manufacturer']} {out['model']}  firmware {out['firmware']}  serial {out['serial']}"
    )
    typer.echo(f"clock offset: {out['clock_offset_s']:+.1f} s (camera minus this machine)")
    typer.echo(f"PullPoint events: {'yes' if out['pullpoint'] else 'not advertised'}")
    typer.echo("services:")
    for ns, xaddr in out["services"].items():
        typer.echo(f"    {ns.rsplit('/', 2)[-2]:<10} {xaddr}")
    typer.echo("profiles:")
    for p in out["profiles"]:
        size = f"{p['width']}x{p['height']}" if p["width"] else "?"
        typer.echo(f"    {p['token']:<10} {p['name']:<12} {p['encoding'] or '?'} {size}")
        typer.echo(f"        stream   {p['stream_uri']}")
        typer.echo(f"        snapshot {p['snapshot_uri']}")
    for advertised, used in out["rewritten"]:
        typer.echo(f"rewritten (foreign host): {advertised} -> {used}")
    for err in out["errors"]:
        typer.echo(f"warning: {err}", err=True)
