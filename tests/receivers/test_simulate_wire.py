"""``lianfang simulate --no-mqtt --sia … --sip …`` drives a site's panels and GB/T 28181
cameras against running receivers (here in a thread of their own, on loopback)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gateway.cli.main import app
from gateway.config.sites import load_sites
from gateway.events import EventType
from gateway.receivers.gb28181.config import Gb28181ServerConfig
from gateway.receivers.gb28181.server import Gb28181Server
from gateway.receivers.sia.config import SiaReceiverConfig
from gateway.receivers.sia.receiver import SiaReceiver
from gateway.receivers.sia.server import SiaServer
from tests.receivers.fakes import FakeSink

SITE = {
    "id": "wire",
    "devices": [
        {"id": "panel-7", "kind": "alarm", "sia": {"account": "7777", "null_interval_s": 60}},
        {"id": "31010800001320000005", "kind": "perimeter", "gb28181": {}},
    ],
}


class Receivers:
    """Both receivers on their own event loop in a thread."""

    def __init__(self, sites: Path) -> None:
        self.registry = load_sites(sites)
        self.sink = FakeSink()
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.sia: SiaServer | None = None
        self.sip: Gb28181Server | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _start(self) -> None:
        self.sia = SiaServer(
            SiaReceiver(SiaReceiverConfig(enabled=True, port=0), self.registry, self.sink)
        )  # type: ignore[arg-type]
        self.sip = Gb28181Server(
            Gb28181ServerConfig(enabled=True, port=0, password_env="LF_WIRE_PW", catalog_on_register=False),
            self.registry, self.sink,  # type: ignore[arg-type]
        )  # fmt: skip
        await self.sia.start()
        await self.sip.start()

    async def _stop(self) -> None:
        assert self.sia is not None and self.sip is not None
        await self.sia.stop()
        await self.sip.stop()

    def __enter__(self) -> Receivers:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "wire.yaml").write_text(yaml.safe_dump(SITE))
    yield tmp_path


def test_simulate_drives_panels_and_cameras(sites: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LF_WIRE_PW", "pw-123")
    with Receivers(sites) as rx:
        assert rx.sia is not None and rx.sip is not None
        result = CliRunner().invoke(app, [
            "simulate", "--sites", str(sites), "--site", "wire", "--no-mqtt",
            "--sia", f"127.0.0.1:{rx.sia.tcp_port}", "--sip", f"127.0.0.1:{rx.sip.transport.udp_port}",
            "--sip-server-id", "34020000002000000001", "--sip-domain", "3402000000",
            "--device-password-env", "LF_WIRE_PW", "--duration", "2", "--rate", "30",
        ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1 SIA panel(s)" in result.output and "1 GB/T 28181 camera(s)" in result.output
    by_device = {(e.device_id, e.type) for e in rx.sink.events}
    assert ("panel-7", EventType.HEARTBEAT) in by_device or (
        "panel-7",
        EventType.ARMED,
    ) in by_device
    assert ("31010800001320000005", EventType.ONLINE) in by_device


def test_simulate_needs_something_to_do(sites: Path) -> None:
    result = CliRunner().invoke(
        app, ["simulate", "--sites", str(sites), "--site", "wire", "--no-mqtt"]
    )
    assert result.exit_code == 1 and "nothing to simulate" in result.output
    result = CliRunner().invoke(
        app, ["simulate", "--sites", str(sites), "--site", "wire", "--sia", "nohost"]
    )
    assert result.exit_code == 1 and "HOST:PORT" in result.output
