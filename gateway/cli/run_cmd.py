"""``lianfang run`` (production) and ``lianfang demo`` (zero set-up)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import typer

from gateway.config.errors import ConfigErrors
from gateway.config.settings import GatewayConfig

log = logging.getLogger("lianfang")


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # The embedded broker logs every packet at INFO, httpx every camera request (snapshots,
    # including the digest challenge's 401 before each 200).
    for chatty in ("amqtt", "transitions", "httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def serve(
    config: GatewayConfig, *, protocol: Literal["v5", "v311"], banner: str | None = None
) -> None:
    """Start the gateway and the HTTP API in this event loop; stop both on Ctrl-C / SIGTERM."""
    import uvicorn

    from gateway.runtime import Gateway
    from gateway.server import build_app, uvicorn_config
    from gateway.tuning import tune_interpreter

    class Server(uvicorn.Server):
        # We own SIGINT/SIGTERM: uvicorn's handler re-raises the signal after serving, which
        # would cut the orderly shutdown (drain, acknowledge, persist rule state) short.
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    gateway = Gateway(config, protocol=protocol)
    await gateway.start()
    app = await build_app(gateway)
    tune_interpreter()  # GIL switch interval and garbage collector: gateway/tuning.py
    server = Server(uvicorn_config(app, config.api))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    if banner:
        typer.echo(banner)
    try:
        await server.serve()
    finally:
        await gateway.stop()


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        config: Path = typer.Option(
            ..., "--config", "-c", help="Gateway configuration (lianfang.yaml)"
        ),
        mqtt_v311: bool = typer.Option(
            False, "--mqtt-v311", help="Use MQTT 3.1.1 (brokers without MQTT 5)"
        ),
    ) -> None:
        """Production mode against an external broker (Mosquitto, EMQX)."""
        from gateway.config.settings import load_gateway_config

        try:
            cfg = load_gateway_config(config)
        except ConfigErrors as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(1) from exc
        _setup_logging(cfg.log_level)
        os.umask(0o077)  # every file the gateway creates is its owner's only
        banner = f"Lianfang 联防 gateway: API http://{cfg.api.host}:{cfg.api.port}/api/health"
        asyncio.run(serve(cfg, protocol="v311" if mqtt_v311 else "v5", banner=banner))

    @app.command("demo")
    def demo(
        port: int = typer.Option(8000, "--port", help="HTTP port of the API"),
        mqtt_port: int = typer.Option(
            0, "--mqtt-port", help="Embedded broker port (0: a free one)"
        ),
        data_dir: Path = typer.Option(
            Path("data/demo"), "--data-dir", help="SQLite database and keys"
        ),
        rate: float = typer.Option(
            1.0, "--rate", help="Simulated traffic scale (1.0 ≈ a real compound)"
        ),
        seed: int = typer.Option(1, "--seed"),
        camera_port: int = typer.Option(
            18081,
            "--camera-port",
            help="First of the 4 simulated cameras' ports (taken: free ones; 0: free ones)",
        ),
    ) -> None:
        """Zero set-up: embedded broker, SQLite, a simulated compound and the API on 127.0.0.1."""
        _setup_logging("info")
        os.umask(0o077)  # every file the gateway creates is its owner's only
        asyncio.run(
            _demo(port, mqtt_port or free_port(), data_dir.resolve(), rate, seed, camera_port)
        )


async def _demo(
    port: int, mqtt_port: int, data_dir: Path, rate: float, seed: int, camera_port: int
) -> None:
    from gateway.config.sites import load_sites
    from gateway.demo import cameras as demo_cameras
    from gateway.demo.broker import EmbeddedBroker
    from gateway.demo.config import demo_config
    from gateway.demo.simulator import run_simulator

    demo_cameras.demo_password()
    # The demo's administrator: a fresh password per run (never one in the repository); it is
    # created on the first run of a data folder, so later runs keep the first password.
    os.environ.setdefault("LIANFANG_ADMIN_USER", "admin")
    os.environ.setdefault("LIANFANG_ADMIN_PASSWORD", secrets.token_urlsafe(12))
    fresh = not (data_dir / "lianfang.db").exists()
    cameras = await demo_cameras.start_simulator(camera_port)
    cameras_file = await asyncio.to_thread(demo_cameras.write_cameras_file, data_dir, cameras)
    onvif_file = await asyncio.to_thread(demo_cameras.write_onvif_file, data_dir, cameras)
    cfg = demo_config(
        data_dir, port=port, mqtt_port=mqtt_port, cameras_file=cameras_file, onvif_file=onvif_file
    )
    site = load_sites(cfg.sites_dir).sites["demo-compound"]
    broker = EmbeddedBroker(host="127.0.0.1", port=mqtt_port)
    await broker.start()
    stop = asyncio.Event()
    camera_ports = ", ".join(str(c.port) for c in cameras)
    base = f"http://127.0.0.1:{port}"
    banner = "\n".join([
        "",
        "联防 Lianfang demo is running — 演示已启动",
        f"  compound 小区:      {site.name} ({len(site.devices)} devices)",
        f"  MQTT broker:        127.0.0.1:{mqtt_port} (embedded, anonymous, loopback only)",
        f"  ONVIF cameras 摄像机: {len(demo_cameras.CAMERAS)} simulated, 127.0.0.1 ports {camera_ports}",
        f"  database:           {data_dir / 'lianfang.db'}",
        f"  console 控制台:     {base}/",
        (
            f"  login 登录:         {os.environ['LIANFANG_ADMIN_USER']} / "
            f"{os.environ['LIANFANG_ADMIN_PASSWORD']}"
            if fresh
            else f"  login 登录:         {os.environ['LIANFANG_ADMIN_USER']} (password of the first run)"
        ),
        f"  health 健康状态:    {base}/api/health",
        f"  devices 设备:       {base}/api/devices",
        f"  events 事件:        {base}/api/events",
        f"  live stream 实时流: {base}/api/events/stream",
        f"  quarantine 隔离区:  {base}/api/quarantine",
        f"  rules 规则:         {base}/api/rules",
        f"  API schema:         {base}/api/openapi.json",
        "Press Ctrl-C to stop. 按 Ctrl-C 停止。",
    ])  # fmt: skip
    activity = asyncio.create_task(
        demo_cameras.camera_activity(cameras, stop, rate=rate, seed=seed)
    )
    sim = asyncio.create_task(
        run_simulator(site, host="127.0.0.1", port=mqtt_port, rate=rate, seed=seed, stop=stop)
    )
    try:
        await serve(cfg, protocol="v311", banner=banner)
    finally:
        stop.set()
        try:
            await asyncio.wait_for(sim, timeout=10)
        except (TimeoutError, asyncio.CancelledError):
            sim.cancel()
        activity.cancel()
        await cameras.stop()
        await broker.stop()
        typer.echo("demo stopped cleanly — 演示已停止")
