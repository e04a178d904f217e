"""`lianfang demo` end to end: it starts with zero set-up, serves live data, stops cleanly."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.brokers import free_port

ROOT = Path(__file__).resolve().parent.parent


def test_demo_runs_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "LIANFANG_PII_KEY"}  # as a newcomer has it
    password = secrets.token_urlsafe(16)  # the first administrator comes from the environment
    env |= {"LIANFANG_ADMIN_USER": "admin", "LIANFANG_ADMIN_PASSWORD": password}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli.main", "demo", "--port", str(port),
         "--data-dir", str(tmp_path / "demo"), "--rate", "20"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        health: dict = {}  # type: ignore[type-arg]
        kinds: set[str] = set()
        online = 0
        pushed: set[str] = set()  # GA/T 1400 and ISAPI devices seen online
        push_devices = {"31010800001190000002", "hik-acs-south-ped", "hik-anpr-south"}
        auth: dict[str, str] = {}
        while time.monotonic() < deadline:
            try:
                if not auth:
                    login = {"username": "admin", "password": password}
                    token = httpx.post(f"{base}/api/auth/login", json=login, timeout=5).json()
                    auth = {"Authorization": f"Bearer {token['token']}"}
                assert httpx.get(f"{base}/api/health", timeout=2).status_code == 401
                health = httpx.get(f"{base}/api/health", headers=auth, timeout=2).json()
                events = httpx.get(
                    f"{base}/api/events", params={"limit": 1000}, headers=auth, timeout=5
                ).json()
                kinds = {e["kind"] for e in events["items"]}
                devices = httpx.get(
                    f"{base}/api/devices", params={"limit": 500}, headers=auth, timeout=5
                ).json()
                online = sum(1 for d in devices["items"] if d["online"])
                pushed = {d["id"] for d in devices["items"] if d["online"]} & push_devices
            except httpx.HTTPError:
                pass
            # last-seen state is written once a second: wait for it like for the events
            if (
                health.get("status") == "ok"
                and {"access", "gate", "perimeter", "alarm"} <= kinds
                and online >= 20
                and pushed == push_devices
            ):
                break
            time.sleep(0.5)
        assert health.get("status") == "ok", health
        assert {"access", "gate", "perimeter", "alarm"} <= kinds
        assert set(health["pipeline"]) == {
            "rules_backlog",
            "signals_pending",
            "panic_acks_held",
            "panics_not_stored",
        }
        assert online >= 20
        assert pushed == push_devices  # they reach the API port over GA/T 1400 and ISAPI
        assert httpx.get(f"{base}/api/rules", headers=auth, timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-3000:]
    assert "demo stopped cleanly" in out
    assert "Traceback" not in out, out[-3000:]
