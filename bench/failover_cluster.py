"""The processes and the lease table bench/failover.py works with: the worker processes, the
police desk's MQTT subscriber, and what the database says about ownership and stored
events."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, text

from bench import failover_setup as setup
from tests.support.brokers import free_port

ROOT = Path(__file__).resolve().parent.parent

OWNED = text(
    "SELECT site, worker_id FROM site_leases "
    "WHERE worker_id IS NOT NULL AND expires_at > now() ORDER BY site"
)


class Unavailable(SystemExit):
    pass


def require_cluster_mode() -> None:
    """Fail at once, clearly, where this checkout has no cluster mode yet."""
    try:
        from gateway.cluster.config import ClusterConfig  # noqa: F401
        from gateway.config.settings import GatewayConfig
    except ImportError as exc:
        raise Unavailable(
            f"failover: cluster mode is not available in this checkout ({exc}); it needs "
            "gateway/cluster (issue 16: leases, per-site sessions)"
        ) from None
    if "cluster" not in GatewayConfig.model_fields:
        raise Unavailable("failover: lianfang.yaml has no `cluster:` section in this checkout")


def lianfang_command() -> list[str]:
    """`lianfang` from this checkout (run with cwd ROOT), whatever the venv has installed."""
    return [sys.executable, "-c", "from gateway.cli.main import app; app()"]


def owners(engine: Engine) -> dict[str, str]:
    """site → worker id of every valid lease (the database's clock)."""
    with engine.connect() as conn:
        return {site: worker for site, worker in conn.execute(OWNED).all()}


class Desk:
    """The police desk: a plain MQTT subscriber on its notification topics."""

    def __init__(self, port: int) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.first_new: dict[str, float] = {}  # press event id → arrival (wall clock)
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id="failover-desk"
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: ready.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("lianfang/notify/police-desk/#", qos=1)
        self.client.loop_start()
        if not ready.wait(10):
            raise SystemExit("failover: the desk could not subscribe")

    def _on_message(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        now = time.time()
        body = json.loads(m.payload)
        with self._lock:
            self.messages.append((m.topic, body))
            if body.get("occasion") == "new" and body.get("event_ids"):
                self.first_new.setdefault(body["event_ids"][0], now)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Cluster:
    """The worker processes, by worker id."""

    def __init__(self, workdir: Path, broker_port: int, url: str, ttl: float) -> None:
        self.workdir, self.broker_port, self.url, self.ttl = workdir, broker_port, url, ttl
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, worker_id: str) -> None:
        cfg = setup.write_worker_config(
            self.workdir,
            worker_id,
            broker_port=self.broker_port,
            api_port=free_port(),
            database_url=self.url,
            lease_ttl_s=self.ttl,
        )
        log = (self.workdir / f"{worker_id}.log").open("ab")  # a restart appends
        self.procs[worker_id] = subprocess.Popen(
            [*lianfang_command(), "run", "--config", str(cfg)],
            stdout=log,
            stderr=log,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    def check_alive(self, skip: str | None = None) -> None:
        for wid, proc in self.procs.items():
            if wid != skip and proc.poll() is not None:
                raise SystemExit(
                    f"failover: worker {wid} exited ({proc.returncode}):\n" + self.log_tail(wid)
                )

    def log_tail(self, worker_id: str, lines: int = 30) -> str:
        path = self.workdir / f"{worker_id}.log"
        text_ = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text_.splitlines()[-lines:])

    def tracebacks(self) -> dict[str, int]:
        """Tracebacks in each worker's log: errors the counts above may not show."""
        out = {}
        for wid in self.procs:
            path = self.workdir / f"{wid}.log"
            log = path.read_text(errors="replace") if path.exists() else ""
            out[wid] = log.count("Traceback (most recent call last)")
        return out

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for wid, proc in self.procs.items():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                print(f"failover: worker {wid} did not stop in 30 s, killed", file=sys.stderr)
                proc.kill()
                proc.wait()


def wait_spread(engine: Engine, cluster: Cluster, sites: list[str], timeout_s: float) -> None:
    """Until every site is owned, every worker owns one, and that holds for 2 s."""
    deadline = time.monotonic() + timeout_s
    stable_since, last = 0.0, {}
    while time.monotonic() < deadline:
        cluster.check_alive()
        now_owned = owners(engine)
        # the site-less session (~siteless) is leased like a site too: owned, but not ours to list
        good = set(now_owned) >= set(sites) and set(now_owned.values()) == set(cluster.procs)
        if good and now_owned == last:
            if time.monotonic() - stable_since >= 2.0:
                return
        else:
            stable_since, last = time.monotonic(), now_owned
        time.sleep(0.2)
    raise SystemExit(f"failover: sites not spread over the workers in {timeout_s:.0f} s: {last}")


def wait_holding(engine: Engine, cluster: Cluster, worker_id: str, timeout_s: float) -> None:
    """Until ``worker_id`` holds a lease: it has finished starting (schema, grid import)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        cluster.check_alive()
        if worker_id in owners(engine).values():
            return
        time.sleep(0.2)
    raise SystemExit(f"failover: {worker_id} holds no site {timeout_s:.0f} s after its start")


def stored_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT event_id FROM events"))]


def wait_stored(engine: Engine, ids: set[str], timeout_s: float, idle_s: float) -> None:
    """Until every id is stored, or ``timeout_s`` passed, or nothing new came for ``idle_s``."""
    deadline, idle_since, last = time.monotonic() + timeout_s, time.monotonic(), -1
    while time.monotonic() < deadline and time.monotonic() - idle_since < idle_s:
        have = len(ids.intersection(stored_ids(engine)))
        if have == len(ids):
            return
        if have != last:
            last, idle_since = have, time.monotonic()
        time.sleep(0.5)
