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
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import typer

from gateway.cli.startup import (
    StartupError,
    bind_api_socket,
    check_cluster_database,
    check_data_folder_free,
    check_receiver_ports,
    data_folder_in_use,
)
from gateway.cluster.config import process_lock_file
from gateway.config.errors import ConfigErrors
from gateway.config.settings import GatewayConfig

log = logging.getLogger("lianfang")
DEMO_CLIENT_ID = "lianfang-demo"  # the demo's MQTT client id (gateway/demo/config.py)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # The embedded broker logs every packet at INFO, httpx every camera request (snapshots,
    # including the digest challenge's 401 before each 200), Alembic its plug-ins and every
    # migration step (a schema upgrade is still logged: gateway.storage.db).
    for chatty in ("amqtt", "transitions", "httpx", "httpcore", "alembic"):
        logging.getLogger(chatty).setLevel(logging.WARNING)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


async def serve(
    config: GatewayConfig,
    *,
    protocol: Literal["v5", "v311"],
    banner: str | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Start the gateway and the HTTP API in this event loop; stop both on Ctrl-C / SIGTERM.

    Raises ``StartupError`` (nothing started, nothing printed as running) for what we know
    can stop a start: the API port taken, the data folder held by another gateway, an unset
    secret or a missing key."""
    import uvicorn

    from gateway.audit.chain import AuditKeyError
    from gateway.ingest.mqtt import ConsumerLockError
    from gateway.privacy import PiiKeyError
    from gateway.runtime import Gateway
    from gateway.server import build_app, uvicorn_config
    from gateway.tuning import tune_interpreter

    class Server(uvicorn.Server):
        # We own SIGINT/SIGTERM: uvicorn's handler re-raises the signal after serving, which
        # would cut the orderly shutdown (drain, acknowledge, persist rule state) short.
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    check_cluster_database(config.cluster.enabled, config.database.url)
    sock = sock or bind_api_socket(config.api.host, config.api.port)
    try:
        gateway = Gateway(config, protocol=protocol)
    except ConfigErrors as exc:
        raise StartupError(str(exc)) from None
    except (PiiKeyError, AuditKeyError) as exc:
        raise StartupError(f"密钥不可用 / key unavailable: {exc}") from None
    try:
        await gateway.start()
    except ConsumerLockError as exc:
        raise data_folder_in_use(exc.path, config.data_dir) from None
    try:
        app = await build_app(gateway)
        tune_interpreter()  # GIL switch interval and garbage collector: gateway/tuning.py
        server = Server(uvicorn_config(app, config.api))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
        if banner:
            typer.echo(banner)
        await server.serve(sockets=[sock])
    finally:
        sock.close()
        await gateway.stop()


def _exit_on_startup_error(exc: StartupError) -> typer.Exit:
    typer.echo(f"lianfang: {exc}", err=True)
    return typer.Exit(1)


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
        try:
            check_cluster_database(cfg.cluster.enabled, cfg.database.url)
            check_data_folder_free(
                cfg.data_dir,
                cfg.mqtt.client_id,
                lock_file=process_lock_file(cfg.data_dir, cfg.mqtt.client_id, cfg.cluster),
            )
            for receiver, option in ((cfg.sia, "sia.port"), (cfg.gb28181, "gb28181.port")):
                if receiver.enabled and receiver.port:
                    check_receiver_ports(receiver.host, {option: receiver.port})
            sock = bind_api_socket(cfg.api.host, cfg.api.port)
            asyncio.run(
                serve(cfg, protocol="v311" if mqtt_v311 else "v5", banner=banner, sock=sock)
            )
        except StartupError as exc:
            raise _exit_on_startup_error(exc) from None

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
        sia_port: int = typer.Option(
            0, "--sia-port", help="SIA DC-09 receiver, TCP and UDP (0: a free one, printed)"
        ),
        sip_port: int = typer.Option(
            0, "--sip-port", help="GB/T 28181 SIP server, UDP and TCP (0: a free one, printed)"
        ),
    ) -> None:
        """Zero set-up: embedded broker, SQLite, a simulated compound and the API on 127.0.0.1."""
        _setup_logging("info")
        os.umask(0o077)  # every file the gateway creates is its owner's only
        try:
            check_data_folder_free(data_dir.resolve(), DEMO_CLIENT_ID)
            sock = bind_api_socket("127.0.0.1", port)
            ports = _DemoPorts(sia_port or free_port(), sip_port or free_port())
            check_receiver_ports("127.0.0.1", {"--sia-port": ports.sia, "--sip-port": ports.sip})
            asyncio.run(
                _demo(
                    sock,
                    port,
                    mqtt_port or free_port(),
                    data_dir.resolve(),
                    rate,
                    seed,
                    camera_port,
                    ports,
                )
            )
        except StartupError as exc:
            raise _exit_on_startup_error(exc) from None


@dataclass(frozen=True)
class _DemoPorts:
    sia: int
    sip: int


async def _demo(
    sock: socket.socket,
    port: int,
    mqtt_port: int,
    data_dir: Path,
    rate: float,
    seed: int,
    camera_port: int,
    receivers: _DemoPorts,
) -> None:
    from gateway.config.sites import load_sites
    from gateway.demo import cameras as demo_cameras
    from gateway.demo.broker import EmbeddedBroker
    from gateway.demo.config import SIP_DOMAIN, SIP_SERVER_ID, demo_config, demo_receivers
    from gateway.demo.devices import PASSWORD_ENV, demo_device_password
    from gateway.demo.simulator import run_simulator
    from gateway.demo.simulator.gb28181_camera import run_cameras
    from gateway.demo.simulator.http_push import push_devices, run_push_devices
    from gateway.demo.simulator.sia_panel import run_panels

    demo_cameras.demo_password()
    device_password_given = bool(os.environ.get(PASSWORD_ENV))
    device_password = demo_device_password(data_dir)
    # The demo's administrator: a fresh password per run (never one in the repository); it is
    # created on the first run of a data folder, so later runs keep the first password.
    os.environ.setdefault("LIANFANG_ADMIN_USER", "admin")
    os.environ.setdefault("LIANFANG_ADMIN_PASSWORD", secrets.token_urlsafe(12))
    fresh = not (data_dir / "lianfang.db").exists()
    cameras = await demo_cameras.start_simulator(camera_port)
    cameras_file = await asyncio.to_thread(demo_cameras.write_cameras_file, data_dir, cameras)
    onvif_file = await asyncio.to_thread(demo_cameras.write_onvif_file, data_dir, cameras)
    cfg = demo_config(
        data_dir,
        port=port,
        mqtt_port=mqtt_port,
        cameras_file=cameras_file,
        onvif_file=onvif_file,
        **demo_receivers(receivers.sia, receivers.sip, PASSWORD_ENV),
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
        f"  SIA DC-09 报警主机:  127.0.0.1:{receivers.sia} (TCP and UDP), panel account 1234",
        f"  GB/T 28181 国标:    127.0.0.1:{receivers.sip} (UDP and TCP), server {SIP_SERVER_ID}"
        f" domain {SIP_DOMAIN}",
        f"  GA/T 1400 视图库:   {base}/VIID (digest; devices: "
        + ", ".join(d.id for d in push_devices(site) if d.profile == "gat1400") + ")",
        f"  ISAPI push 海康推送: {base}/isapi/events/<device id> (digest; devices: "
        + ", ".join(d.id for d in push_devices(site) if d.profile != "gat1400") + ")",
        (
            f"  device password 设备密码: (from {PASSWORD_ENV})"
            if device_password_given
            else f"  device password 设备密码: {device_password} (kept in {data_dir}; or set {PASSWORD_ENV})"
        ),
        f"  database:           {data_dir / 'lianfang.db'}",
        f"  console 控制台:     {base}/",
        f"  health 健康状态:    {base}/api/health",
        f"  devices 设备:       {base}/api/devices",
        f"  events 事件:        {base}/api/events",
        f"  live stream 实时流: {base}/api/events/stream",
        f"  quarantine 隔离区:  {base}/api/quarantine",
        f"  rules 规则:         {base}/api/rules",
        f"  API schema:         {base}/api/openapi.json",
        (
            f"  login 登录:         {os.environ['LIANFANG_ADMIN_USER']} / "
            f"{os.environ['LIANFANG_ADMIN_PASSWORD']}"
            if fresh
            else f"  login 登录:         {os.environ['LIANFANG_ADMIN_USER']}"
            f" (password of the first run; forgotten: lianfang users reset-password "
            f"{os.environ['LIANFANG_ADMIN_USER']} --data-dir {data_dir} --generate)"
        ),
        "Press Ctrl-C to stop. 按 Ctrl-C 停止。",
    ])  # fmt: skip
    activity = asyncio.create_task(
        demo_cameras.camera_activity(cameras, stop, rate=rate, seed=seed)
    )
    sim = asyncio.create_task(
        run_simulator(site, host="127.0.0.1", port=mqtt_port, rate=rate, seed=seed, stop=stop)
    )
    started = False
    wire = asyncio.gather(
        run_panels(site, "127.0.0.1", receivers.sia, rate=rate, seed=seed, stop=stop),
        run_cameras(
            site, "127.0.0.1", receivers.sip, server_id=SIP_SERVER_ID, domain=SIP_DOMAIN,
            rate=rate, seed=seed, stop=stop, default_password_env=PASSWORD_ENV,
        ),
    )  # fmt: skip
    pushers = asyncio.create_task(
        run_push_devices(site, base, device_password, rate=rate, seed=seed, stop=stop)
    )
    try:
        await serve(cfg, protocol="v311", banner=banner, sock=sock)
        started = True
    finally:
        stop.set()
        for task in (sim, pushers):
            try:
                await asyncio.wait_for(task, timeout=10)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
        wire.cancel()
        with contextlib.suppress(BaseException):
            await wire
        activity.cancel()
        await cameras.stop()
        await broker.stop()
        if started:
            typer.echo("demo stopped cleanly — 演示已停止")
