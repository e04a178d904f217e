"""The GB/T 28181 server against SIPp (Debian's sip-tester), an independent SIP implementation:
digest registration (401, then 200; a wrong password 403), Keepalive and Alarm answered 200,
the alarm response received — over UDP and TCP. CI installs sipp (.ci/run)."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.config.sites import DeviceConfig, SiteConfig, SiteRegistry
from gateway.events import EventType
from gateway.receivers.gb28181.config import Gb28181DeviceConfig, Gb28181ServerConfig
from gateway.receivers.gb28181.server import Gb28181Server
from tests.receivers.fakes import FakeSink

SIPP = shutil.which("sipp")
SCENARIOS = Path(__file__).parent / "sipp"
DEV, SERVER_ID, DOMAIN = "31010800001320000001", "31010800002000000001", "3101080000"

pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed")


@pytest.fixture
async def server(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Gb28181Server, FakeSink]]:
    monkeypatch.setenv("LF_TEST_GB_PW", "s3cret-pw")
    registry = SiteRegistry(
        [
            SiteConfig(
                id="demo",
                devices=[DeviceConfig(id=DEV, kind="perimeter", gb28181=Gb28181DeviceConfig())],
            )
        ]
    )
    config = Gb28181ServerConfig(
        enabled=True, port=0, server_id=SERVER_ID, domain=DOMAIN, password_env="LF_TEST_GB_PW",
        catalog_on_register=False,  # SIPp's scenario expects only the alarm response
    )  # fmt: skip
    sink = FakeSink()
    srv = Gb28181Server(config, registry, sink)  # type: ignore[arg-type]
    await srv.start()
    try:
        yield srv, sink
    finally:
        await srv.stop()


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_sipp(
    scenario: str, port: int, transport: str, password: str, tmp: Path
) -> tuple[int, str]:
    assert SIPP is not None
    local = free_port(socket.SOCK_DGRAM if transport == "u1" else socket.SOCK_STREAM)
    proc = await asyncio.create_subprocess_exec(
        SIPP, f"127.0.0.1:{port}", "-sf", str(SCENARIOS / scenario), "-m", "1", "-t", transport,
        "-i", "127.0.0.1", "-p", str(local), "-key", "dev", DEV, "-key", "server", SERVER_ID,
        "-key", "domain", DOMAIN, "-au", DEV, "-ap", password, "-timeout", "20s",
        "-timeout_error", "-nostdin", "-trace_err",
        cwd=tmp, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 40)
    errors = await asyncio.to_thread(
        lambda: "".join(p.read_text(errors="replace") for p in tmp.glob("*_errors.log"))
    )
    return proc.returncode or 0, out.decode(errors="replace")[-2000:] + errors[-2000:]


@pytest.mark.parametrize("transport", ["u1", "t1"])
async def test_sipp_registers_sends_keepalive_and_alarm(
    server, transport: str, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    srv, sink = server
    port = srv.transport.udp_port if transport == "u1" else srv.transport.tcp_port
    code, output = await run_sipp(
        "register_keepalive_alarm.xml", port, transport, "s3cret-pw", tmp_path
    )
    assert code == 0, output
    assert [e.type for e in sink.events] == [
        EventType.ONLINE,
        EventType.HEARTBEAT,
        EventType.INTRUSION,
    ]
    assert sink.events[-1].device_id == DEV


async def test_sipp_wrong_password_is_refused(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    srv, sink = server
    code, output = await run_sipp(
        "register_wrong_password.xml", srv.transport.udp_port, "u1", "wrong", tmp_path
    )
    assert code == 0, output  # the scenario expects the 403
    assert sink.events == [] and sink.reasons() == ["unauthenticated"]
