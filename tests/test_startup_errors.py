"""Errors we know end a start with one line and a non-zero exit, before any "running" banner:
a taken port, a data folder another gateway holds, an unset secret. And the ways back in:
`config check` meets secrets and services as `run` would; `users reset-password`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli.main import app as lianfang
from gateway.cli.run_cmd import DEMO_CLIENT_ID
from gateway.cli.startup import StartupError, bind_api_socket, lock_holder
from gateway.ingest.mqtt import SingleConsumerLock, consumer_lock_path
from tests.support.brokers import free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def write_config(tmp_path: Path, extra: str) -> Path:
    """A gateway file on the shipped profiles, sites, rules and grid, data in ``tmp_path``."""
    config = tmp_path / "lianfang.yaml"
    shipped = ROOT / "config"
    config.write_text(
        f"data_dir: {tmp_path / 'data'}\n"
        f"profiles_dir: {shipped / 'profiles'}\nsites_dir: {shipped / 'sites'}\n"
        f"rules_dir: {shipped / 'rules'}\nrouting_file: {shipped / 'routing.yaml'}\n"
        f"grid_dir: {shipped / 'grid'}\n" + extra,
        encoding="utf-8",
    )
    return config


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli.main", *args],
        cwd=ROOT, env=env or dict(os.environ), capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_demo_on_a_taken_port_exits_with_one_line(tmp_path: Path, taken_port: int) -> None:
    done = run_cli("demo", "--port", str(taken_port), "--data-dir", str(tmp_path / "demo"))
    output = done.stdout + done.stderr
    assert done.returncode == 1
    assert f"port {taken_port}" in done.stderr and "--port" in done.stderr
    assert "Traceback" not in output
    assert "running" not in output and "login" not in output  # no banner, no password
    assert "stopped cleanly" not in output
    assert not (tmp_path / "demo" / "lianfang.db").exists()  # nothing started


def test_demo_on_a_held_data_folder_names_the_holder(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    lock = SingleConsumerLock(consumer_lock_path(data_dir, DEMO_CLIENT_ID))
    lock.acquire()  # as a first demo holds it
    try:
        done = run_cli("demo", "--port", str(free_port()), "--data-dir", str(data_dir))
    finally:
        lock.release()
    assert done.returncode == 1
    assert f"process {os.getpid()}" in done.stderr and str(data_dir) in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "running" not in done.stdout


def test_run_with_an_unset_secret_says_which(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        f"api: {{port: {free_port()}}}\n"
        "mqtt: {username: gw, password_env: LIANFANG_TEST_UNSET_SECRET}\n",
    )
    env = {k: v for k, v in os.environ.items() if k != "LIANFANG_TEST_UNSET_SECRET"}
    done = run_cli("run", "--config", str(config), env=env)
    assert done.returncode == 1
    assert "LIANFANG_TEST_UNSET_SECRET is not set" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr

    # config check meets it the same way, and says what run would meet on the network
    check = CliRunner().invoke(lianfang, ["config", "check", str(config)])
    assert check.exit_code == 1
    assert "LIANFANG_TEST_UNSET_SECRET is not set" in check.output
    env_set = CliRunner().invoke(
        lianfang,
        ["config", "check", str(config)],
        env={"LIANFANG_TEST_UNSET_SECRET": "x"},
    )
    assert env_set.exit_code == 0, env_set.output
    assert "configuration is valid" in env_set.output


def test_config_check_warns_of_an_unreachable_broker(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    config = write_config(tmp_path, f"mqtt: {{port: {port}}}\n")
    result = CliRunner().invoke(lianfang, ["config", "check", str(config)])
    assert result.exit_code == 0, result.output
    assert f"warn  MQTT broker 127.0.0.1:{port} unreachable" in result.output
    offline = CliRunner().invoke(lianfang, ["config", "check", "--offline", str(config)])
    assert "warn  " not in offline.output and offline.exit_code == 0


def test_bind_api_socket_refuses_a_taken_port(taken_port: int) -> None:
    with pytest.raises(StartupError, match=f"port {taken_port}"):
        bind_api_socket("127.0.0.1", taken_port)
    sock = bind_api_socket("127.0.0.1", 0)
    sock.close()


def test_lock_holder_names_the_process(tmp_path: Path) -> None:
    lock_file = tmp_path / "x.lock"
    lock_file.write_text(str(os.getpid()))
    assert lock_holder(lock_file).startswith(f"process {os.getpid()} (")
    lock_file.write_text("not a pid")
    assert lock_holder(lock_file) == "another process"


def test_reset_password_recovers_the_demo_admin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.audit.chain import AuditLog, load_audit_key
    from gateway.auth.service import AuthService
    from gateway.storage.db import make_engine

    monkeypatch.setenv("LIANFANG_ADMIN_PASSWORD", "first-run-password-1")
    runner = CliRunner()
    created = runner.invoke(lianfang, ["users", "create-admin", "--data-dir", str(tmp_path)])
    assert created.exit_code == 0, created.output
    reset = runner.invoke(
        lianfang, ["users", "reset-password", "admin", "--data-dir", str(tmp_path), "--generate"]
    )
    assert reset.exit_code == 0, reset.output
    new_password = reset.output.strip().splitlines()[-1]
    assert new_password != "first-run-password-1" and len(new_password) >= 12

    engine = make_engine(f"sqlite:///{tmp_path / 'lianfang.db'}")
    service = AuthService(engine, AuditLog(engine, load_audit_key(tmp_path)))
    token, principal = service.login("admin", new_password)
    assert token and principal.name == "admin"
    missing = runner.invoke(lianfang, ["users", "reset-password", "nobody", "--data-dir", str(tmp_path), "--generate"])  # fmt: skip
    assert missing.exit_code == 1 and "no user" in missing.output
    engine.dispose()


def test_an_unreachable_broker_is_logged_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import time

    from gateway.bus import EventBus
    from gateway.config.settings import IngestConfig, MqttConfig
    from gateway.config.sites import SiteRegistry
    from gateway.ingest.mqtt import MqttConsumer
    from gateway.ingest.pipeline import Normaliser
    from gateway.storage.db import make_engine
    from gateway.storage.writer import BatchWriter

    port = free_port()  # nothing listens there
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    consumer = MqttConsumer(
        MqttConfig(host="127.0.0.1", port=port, client_id="t-unreachable"),
        Normaliser([], SiteRegistry([]), IngestConfig()),
        BatchWriter(engine),
        EventBus(),
    )
    caplog.set_level(logging.INFO, logger="gateway.ingest.mqtt")
    consumer.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "unreachable" not in caplog.text:
            time.sleep(0.05)
    finally:
        consumer.stop(drain_timeout=0)
        engine.dispose()
    assert f"MQTT: connecting to 127.0.0.1:{port}" in caplog.text
    assert f"MQTT broker 127.0.0.1:{port} unreachable (1 attempts so far)" in caplog.text
    assert consumer.status.last_error == "broker unreachable" and not consumer.status.connected
