"""The demo's simulated cameras take free loopback ports when the preferred ones are busy, and
the files the demo runs on (cameras.yaml, onvif.yaml) name the ports actually used."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from device_adapters.onvif import load_cameras
from gateway.demo import cameras as demo_cameras


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port some other program listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


async def test_busy_ports_fall_back_to_free_ones_named_in_the_files(
    tmp_path: Path, busy_port: int
) -> None:
    sim = await demo_cameras.start_simulator(busy_port)
    try:
        ports = {c.id: c.port for c in sim}
        assert set(ports) == set(demo_cameras.CAMERAS)
        assert busy_port not in ports.values() and len(set(ports.values())) == 4
        assert all(c.running for c in sim)

        video = yaml.safe_load(demo_cameras.write_cameras_file(tmp_path, sim).read_text())
        snapshots = {c["id"]: c["snapshot_url"] for c in video["cameras"]}
        assert snapshots == {
            cid: f"http://127.0.0.1:{port}/onvif/snapshot.jpg" for cid, port in ports.items()
        }
        onvif = load_cameras(demo_cameras.write_onvif_file(tmp_path, sim)).cameras
        assert {c.id: c.url for c in onvif} == {
            cid: f"http://127.0.0.1:{port}" for cid, port in ports.items()
        }
        assert all(c.allow_foreign_hosts is False and c.password_env for c in onvif)
        site = (Path(__file__).parent.parent / "config/sites/demo-compound.yaml").read_text("utf-8")
        assert all(c.site == demo_cameras.SITE and f"id: {c.id}," in site for c in onvif)
    finally:
        await sim.stop()


async def test_two_demos_side_by_side() -> None:
    first = await demo_cameras.start_simulator(0)
    try:
        base = min(c.port for c in first)
        second = await demo_cameras.start_simulator(base)  # taken by the first: falls back
        try:
            assert not {c.port for c in first} & {c.port for c in second}
        finally:
            await second.stop()
    finally:
        await first.stop()
