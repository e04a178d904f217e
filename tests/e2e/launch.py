"""The demo gateway with the web console, for the browser tests.

``lianfang demo`` plus the incidents runtime and the console, wired as gateway/web's
docstring says (the runtime wiring of both is the lead's), with live view offered on
127.0.0.1 so WebRTC stays on loopback. Run: ``python -m tests.e2e.launch --port P --data-dir D``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from pathlib import Path

import uvicorn
import yaml
from starlette.requests import HTTPConnection

from gateway import demo_cameras
from gateway.api.app import create_app
from gateway.api.deps import Principal, get_current_principal
from gateway.broker import EmbeddedBroker
from gateway.cli.run_cmd import free_port
from gateway.config.settings import ApiConfig, DatabaseConfig, GatewayConfig, MqttConfig
from gateway.config.sites import load_sites
from gateway.incidents.runtime import IncidentsRuntime
from gateway.paths import default_config_dir
from gateway.runtime import Gateway
from gateway.simulator import run_simulator
from gateway.web import WebConsole
from gateway.web.session import USER_COOKIE


def trusted_principal(conn: HTTPConnection) -> Principal:
    """The person picked on the console's demo sign-in, trusted with every permission."""
    person = conn.cookies.get(USER_COOKIE) or "console-e2e"
    try:  # the accounts' principal carries a scope and the grid person
        from gateway.auth.principal import EVERYTHING

        return Principal(person, frozenset({"*"}), scope=EVERYTHING, person_id=person)  # type: ignore[call-arg]
    except ImportError:
        return Principal(person, frozenset({"*"}))


class Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def main(port: int, data_dir: Path, rate: float) -> None:
    config_dir = default_config_dir()
    mqtt_port = free_port()
    demo_cameras.demo_password()
    cameras_file = await asyncio.to_thread(demo_cameras.write_cameras_file, data_dir)
    video = yaml.safe_load(cameras_file.read_text())
    video["live"] = {"host_addresses": ["127.0.0.1"]}
    cameras_file.write_text(yaml.safe_dump(video, allow_unicode=True))
    cfg = GatewayConfig(
        data_dir=data_dir,
        mqtt=MqttConfig(host="127.0.0.1", port=mqtt_port, client_id="lianfang-e2e"),
        database=DatabaseConfig(url=f"sqlite:///{data_dir / 'lianfang.db'}"),
        api=ApiConfig(host="127.0.0.1", port=port),
        profiles_dir=config_dir / "profiles",
        sites_dir=config_dir / "sites",
        rules_dir=config_dir / "rules",
        onvif_file=config_dir / "onvif.yaml",
        cameras_file=cameras_file,
        **{  # once the runtime wires the incidents itself, it reads these
            k: v
            for k, v in (
                ("routing_file", config_dir / "routing.yaml"),
                ("grid_dir", config_dir / "grid"),
            )
            if k in GatewayConfig.model_fields
        },
    )
    site = load_sites(cfg.sites_dir).sites["demo-compound"]
    broker = EmbeddedBroker(host="127.0.0.1", port=mqtt_port)
    await broker.start()
    cameras = demo_cameras.simulator()
    await cameras.start()
    stop = asyncio.Event()

    gateway = Gateway(cfg, protocol="v311")
    wired: IncidentsRuntime | None = getattr(gateway, "incidents", None)
    incidents = wired or IncidentsRuntime(
        gateway.engine, gateway.bus, gateway.registry,
        config_dir=config_dir, data_dir=data_dir, mqtt=cfg.mqtt,
        timezone=cfg.timezone, rule_dir=cfg.rules_dir,
    )  # fmt: skip
    if wired is None:
        gateway.rules.sink = incidents.sink
    await gateway.start()
    if wired is None:
        await incidents.start()
    web = WebConsole(gateway, incidents)
    extra = [*gateway.routers, *([] if wired else incidents.routers), web.api_router]
    app = create_app(gateway, extra_routers=extra)
    app.include_router(web.pages_router)
    # The browser tests sign in with the console's demo picker; the console checks roles
    # and grid scope itself, the API trusts the console's caller.
    app.state.console_demo_login = True
    app.dependency_overrides[get_current_principal] = trusted_principal
    app.state.rules = gateway.rules
    server = Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    sim = asyncio.create_task(
        run_simulator(site, host="127.0.0.1", port=mqtt_port, rate=rate, seed=1, stop=stop)
    )
    print(f"e2e gateway on http://127.0.0.1:{port}", flush=True)
    try:
        await server.serve()
    finally:
        stop.set()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(sim, timeout=10)
        if wired is None:
            await incidents.stop()
        await gateway.stop()
        await cameras.stop()
        await broker.stop()
        print("e2e gateway stopped", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--rate", type=float, default=1.0)
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level="WARNING", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(main(args.port, args.data_dir.resolve(), args.rate))
