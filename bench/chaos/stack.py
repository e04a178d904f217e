"""The system under test as real processes: Mosquitto with the shipped durability settings,
``lianfang run`` on a generated configuration, and reads of the database it writes."""

from __future__ import annotations

import getpass
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select

from bench.chaos.site import ROOT
from tests.support.brokers import MosquittoBroker, free_port, wait_port

SHIPPED_CONF = ROOT / "config" / "mosquitto" / "mosquitto.conf"
# Settings of the shipped file that decide what survives a crash and how fast the gateway
# is fed; listeners, TLS, accounts, paths and logging are the bench's own.
DURABILITY_KEYS = frozenset({
    "persistence",
    "autosave_interval",
    "autosave_on_changes",
    "persistent_client_expiration",
    "max_queued_messages",
    "max_queued_bytes",
    "max_inflight_messages",
    "set_tcp_nodelay",
    "max_packet_size",
    "max_keepalive",
})  # fmt: skip
ADMIN_USER, ADMIN_PASSWORD = "chaos-admin", "chaos-bench-only-password"


def shipped_broker_settings(path: Path = SHIPPED_CONF) -> list[str]:
    """The durability and latency lines of config/mosquitto/mosquitto.conf, as written."""
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and line.split()[0] in DURABILITY_KEYS:
            lines.append(line)
    return lines


@dataclass
class ShippedMosquitto(MosquittoBroker):
    """The test broker (tests/support/brokers.py) configured with the shipped settings."""

    def write_config(self) -> Path:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            "\n".join([
                f"listener {self.port} 127.0.0.1",
                f"user {getpass.getuser()}",
                "allow_anonymous true",
                *shipped_broker_settings(),
                f"persistence_location {self.workdir}/",
                f"log_dest file {self.workdir}/mosquitto.log",
                "",
            ])
        )  # fmt: skip
        return conf

    def kill(self) -> None:
        """SIGKILL: nothing is saved beyond the last autosave."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None


def lianfang_command(checkout: Path | None = None) -> list[str]:
    """This checkout's ``lianfang``; another checkout's code with this interpreter (its
    packages first on PYTHONPATH: the editable install's finder comes after the path)."""
    script = Path(sys.executable).parent / "lianfang"
    if checkout is None and script.exists():
        return [str(script)]
    return [sys.executable, "-m", "gateway.cli.main"]


@dataclass
class GatewayProcess:
    """``lianfang run -c <config>``; its output goes to ``log``."""

    config: Path
    api_port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    token: str | None = None
    starts: int = 0
    env: dict[str, str] = field(default_factory=dict)
    checkout: Path | None = None  # run another checkout's gateway (e.g. a branch's worktree)

    def start(self) -> None:
        env = {
            **os.environ,
            "LIANFANG_PII_KEY": "chaos-bench-only-key",
            "LIANFANG_ADMIN_USER": ADMIN_USER,
            "LIANFANG_ADMIN_PASSWORD": ADMIN_PASSWORD,
            **self.env,
        }
        if self.checkout is not None:
            env["PYTHONPATH"] = str(self.checkout)
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts + 1} at {time.time():.3f}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [*lianfang_command(self.checkout), "run", "-c", str(self.config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.checkout or ROOT,
            )
        self.starts += 1

    def wait_ready(self, timeout_s: float = 60) -> None:
        """Until the API answers (the gateway started, its consumer subscribed before)."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"lianfang run exited with {self.proc.returncode}: {self.log}")
            try:
                wait_port(self.api_port, timeout=0.5)
                self.login()
                return
            except (TimeoutError, OSError):
                time.sleep(0.2)
        raise TimeoutError(f"the gateway did not come up in {timeout_s:g}s: {self.log}")

    def login(self) -> None:
        answer = self._request(
            "/api/auth/login", {"username": ADMIN_USER, "password": ADMIN_PASSWORD}
        )
        self.token = str(answer["token"])

    def health(self) -> dict[str, Any] | None:
        """/api/health, or None when the API does not answer within 2 s."""
        try:
            return self._request("/api/health", timeout_s=2)
        except (OSError, ValueError):
            return None

    def _request(
        self, path: str, body: dict[str, Any] | None = None, timeout_s: float = 10
    ) -> dict[str, Any]:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers=headers,
        )
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:
            data: dict[str, Any] = json.loads(answer.read())
            return data

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self, timeout_s: float = 60) -> None:
        """SIGTERM: drain, acknowledge, stop (SIGKILL past ``timeout_s``)."""
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@dataclass
class Database:
    """Reads of the run's database (the bench's own connection, never through a proxy)."""

    url: str

    def __post_init__(self) -> None:
        self.engine = create_engine(self.url)

    def event_count(self) -> int:
        from gateway.storage import tables

        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(tables.events)).scalar_one())

    def has_event(self, event_id: str) -> bool:
        from gateway.storage import tables

        with self.engine.connect() as conn:
            found = conn.execute(
                select(tables.events.c.event_id).where(tables.events.c.event_id == event_id)
            ).first()
        return found is not None

    def event_ids(self) -> list[str]:
        from gateway.storage import tables

        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(tables.events.c.event_id))]

    def status_events(self) -> int:
        from gateway.storage import tables

        e = tables.events.c
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count()).where(e.type.in_(("online", "offline")))
                ).scalar_one()
            )

    def quarantine_reasons(self) -> dict[str, int]:
        from gateway.storage import tables

        q = tables.quarantine.c
        with self.engine.connect() as conn:
            return {
                str(r[0]): int(r[1])
                for r in conn.execute(select(q.reason, func.count()).group_by(q.reason))
            }

    def quarantine_samples(self, per_reason: int = 2) -> list[str]:
        """A few quarantined messages per reason: "reason: detail (topic)"."""
        from gateway.storage import tables

        q = tables.quarantine.c
        out: list[str] = []
        seen: dict[str, int] = {}
        with self.engine.connect() as conn:
            for r in conn.execute(select(q.reason, q.detail, q.topic).order_by(q.id).limit(5000)):
                if seen.get(r.reason, 0) < per_reason:
                    seen[r.reason] = seen.get(r.reason, 0) + 1
                    out.append(f"{r.reason}: {r.detail[:200]} ({r.topic})")
        return out

    def incidents(self) -> list[dict[str, Any]]:
        from gateway.incidents.tables import incidents

        i = incidents.c
        with self.engine.connect() as conn:
            return [
                {
                    "category": r.category,
                    "event_ids": list(r.event_ids or []),
                    "device_id": r.device_id,
                }
                for r in conn.execute(select(i.category, i.event_ids, i.device_id))
            ]

    def notifications(self) -> list[dict[str, Any]]:
        from gateway.notify.tables import notifications

        n = notifications.c
        with self.engine.connect() as conn:
            return [
                {"id": r.id, "channel": r.channel, "status": r.status, "attempts": r.attempts}
                for r in conn.execute(select(n.id, n.channel, n.status, n.attempts))
            ]

    def dispose(self) -> None:
        self.engine.dispose()


__all__ = ["Database", "GatewayProcess", "ShippedMosquitto", "free_port", "wait_port"]
