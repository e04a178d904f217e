"""Browser tests: headless Chromium (Debian's package) drives the console of a demo gateway
started here on a free port, with real accounts (created by the launcher with passwords
generated here) and sign-in through the login page. Skipped when Chromium or Playwright is
missing; CI installs Chromium (.ci/run). Screenshots go to test-artifacts/e2e/."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.brokers import free_port

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
CHROMIUM = os.environ.get("LIANFANG_CHROMIUM", "/usr/bin/chromium")
WALL = {"width": 1920, "height": 1080}
PHONE = {"width": 390, "height": 844}
ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
    # WebRTC on loopback: the gateway offers 127.0.0.1 only; no mDNS-hidden candidates
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]  # fmt: skip

# Accounts by the grid person they are linked to (config/grid/people.yaml): its scopes
# apply (p-worker-1: cell shifan-01; p-desk: both police beats), and a resident's household
# (config/grid/households.csv). Passwords: fresh for every run.
ACCOUNTS: dict[str, dict[str, str | None]] = {
    person: {"username": username, "role": role, "person_id": person, "household_id": household,
             "password": secrets.token_urlsafe(18)}
    for person, username, role, household in (
        ("p-admin", "e2e-admin", "administrator", None),
        ("p-desk", "e2e-desk", "police_desk", None),
        ("p-worker-1", "e2e-worker", "grid_worker", None),
        ("p-resident", "e2e-resident", "resident", "1-1-101"),
        ("p-command", "e2e-command", "command_operator", None),
        ("p-property", "e2e-property", "property_manager", None),
    )
}  # fmt: skip

if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    data = tmp_path_factory.mktemp("e2e") / "demo"
    log = (tmp_path_factory.getbasetemp() / "e2e-gateway.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.launch", "--port", str(port), "--data-dir", str(data)],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("LIANFANG_ADMIN_")},
             "LIANFANG_E2E_ACCOUNTS": json.dumps(list(ACCOUNTS.values()))},
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert proc.poll() is None, Path(log.name).read_text()[-3000:]
            try:
                if httpx.get(f"{base}/login", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            pytest.fail("the e2e gateway did not start within 60 s")
        yield base
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


# Module scope: Playwright's sync API keeps an event loop running in this thread while it is
# open, which the asyncio tests collected after this folder cannot share.
@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def login(browser: Any, gateway: str) -> Iterator[Callable[..., Any]]:
    """``login("p-desk", WALL)`` → a page signed in, on the login page, with the account
    linked to that grid person (own cookies)."""
    contexts: list[Any] = []

    def open_as(person: str, viewport: dict[str, int] = WALL, lang: str = "zh") -> Any:
        ctx = browser.new_context(viewport=viewport, base_url=gateway, locale="zh-CN")
        contexts.append(ctx)
        page = ctx.new_page()
        page.on("console", lambda m: m.type == "error" and print(f"[{person}] {m.text}"))
        account = ACCOUNTS[person]
        page.goto(f"/login?lang={lang}")
        page.fill("#login input[name=username]", str(account["username"]))
        page.fill("#login input[name=password]", str(account["password"]))
        page.click("#login button[type=submit]")
        page.wait_for_url("**/console/**")
        page.wait_for_load_state("domcontentloaded")
        return page

    yield open_as
    for ctx in contexts:
        ctx.close()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=False)


@pytest.fixture(scope="module")
def api(gateway: str) -> Iterator[httpx.Client]:
    """The API as the command centre's operator (may report and dispatch anywhere; the
    administrator may not report), signed in by POST /api/auth/login, used as a bearer."""
    admin = ACCOUNTS["p-command"]
    with httpx.Client(base_url=gateway, timeout=10) as client:
        r = client.post("/api/auth/login",
                        json={"username": admin["username"], "password": admin["password"]})  # fmt: skip
        r.raise_for_status()
        client.headers["Authorization"] = f"Bearer {r.json()['token']}"
        yield client
