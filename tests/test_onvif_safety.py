"""Hostile ONVIF cameras: malformed SOAP, XXE (must not fetch its URL), entity bombs,
oversized answers, addresses advertised on a foreign host (not followed), redirects."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
import zeep.exceptions
from zeep.loader import parse_xml
from zeep.transports import Transport

from device_adapters.onvif import HealthState
from device_adapters.onvif.client import OnvifClient
from device_adapters.onvif.health import classify
from device_adapters.onvif.safety import (
    SAFE_SETTINGS,
    ForeignHostRefused,
    HttpGuard,
    rewrite_advertised,
)
from gateway.demo.camera_sim import Canary, SimCamera, soap
from tests.support.onvif_sim import Sink, fast_config, manager, wait_until


@pytest.fixture
async def canary() -> AsyncIterator[Canary]:
    # 127.0.0.2 is loopback too, and a *different host* from the cameras' 127.0.0.1.
    c = Canary("127.0.0.2")
    await c.start()
    yield c
    await c.stop()


async def _connect_state(cam: SimCamera) -> tuple[HealthState, str]:
    client = OnvifClient(fast_config(cam), "sim-password")
    try:
        await client.connect()
    except Exception as exc:
        return classify(exc)
    finally:
        await client.close()
    raise AssertionError("connect should have failed")


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("malformed", "malformed SOAP"),
        ("xxe", "unsafe XML refused"),
        ("billion_laughs", "unsafe XML refused"),
        ("oversize", "oversized answer"),
    ],
)
async def test_hostile_answer_on_connect_is_a_protocol_error(
    mode: str, expected: str, canary: Canary
) -> None:
    cam = SimCamera("cam-evil")
    cam.hostile = mode  # type: ignore[assignment]
    cam.hostile_operations = frozenset({"GetDeviceInformation"})
    cam.canary_url = canary.url
    await cam.start()
    try:
        state, detail = await _connect_state(cam)
    finally:
        await cam.stop()
    assert state is HealthState.PROTOCOL_ERROR
    assert expected in detail
    assert canary.hits == []  # the external entity was never fetched


async def test_xxe_in_pull_messages_is_not_fetched_and_other_cameras_keep_serving(
    canary: Canary,
) -> None:
    evil, good = SimCamera("cam-evil"), SimCamera("cam-good")
    await evil.start()
    await good.start()
    sink = Sink()
    mgr = manager([fast_config(evil), fast_config(good)], sink)
    await mgr.start()
    try:
        await wait_until(lambda: mgr.status()["cam-evil"].state is HealthState.ONLINE)
        evil.canary_url = canary.url
        evil.hostile_operations = frozenset({"PullMessages"})
        evil.hostile = "xxe"
        # Read the error while it is the state: the evil camera keeps reconnecting (its
        # connection is fine, only its PullMessages answers are hostile), and each reconnect
        # clears last_error until the next pull fails, so after stop() it may be None.
        refusals: list[str] = []

        def refused() -> bool:
            status = mgr.status()["cam-evil"]
            if status.state is HealthState.PROTOCOL_ERROR and status.last_error:
                refusals.append(status.last_error)
                return True
            return False

        await wait_until(refused)
        good.inject_kind("intrusion")
        await wait_until(lambda: bool(sink.of("cam-good", "intrusion")))
        assert mgr.status()["cam-good"].state is HealthState.ONLINE
    finally:
        await mgr.stop()
        await evil.stop()
        await good.stop()
    assert canary.hits == []
    assert "unsafe XML refused" in refusals[0]
    assert ("offline", "protocol_error") in sink.health("cam-evil")


def test_safe_settings_refuse_dtds_and_entities(canary: Canary) -> None:
    for payload in (soap.xxe(canary.url), soap.billion_laughs()):
        with pytest.raises(zeep.exceptions.DTDForbidden):
            parse_xml(payload.encode(), Transport(), settings=SAFE_SETTINGS)  # type: ignore[arg-type,no-untyped-call]
    assert SAFE_SETTINGS.xml_huge_tree is False


async def test_address_advertised_for_a_foreign_host_is_not_followed(canary: Canary) -> None:
    # The camera says its services (and subscription, snapshot) live on the canary's host.
    cam = SimCamera("cam-nat", advertised_host=canary.host, advertised_port=canary.port)
    await cam.start()
    sink = Sink()
    mgr = manager([fast_config(cam)], sink)
    await mgr.start()
    try:
        await wait_until(lambda: mgr.status()["cam-nat"].state is HealthState.ONLINE)
        cam.inject_kind("line_crossing")
        await wait_until(lambda: bool(sink.of("cam-nat", "line_crossing")))
        client = OnvifClient(fast_config(cam), "sim-password")
        try:
            await client.connect()
            report = await client.report()
        finally:
            await client.close()
    finally:
        await mgr.stop()
        await cam.stop()
    assert canary.hits == []
    assert all(url.startswith(f"http://127.0.0.1:{cam.port}/") for url in report.services.values())
    assert report.profiles[0].snapshot_uri == f"http://127.0.0.1:{cam.port}/onvif/snapshot.jpg"
    assert report.profiles[0].stream_uri == "rtsp://127.0.0.1:554/main"
    assert any(canary.base in advertised for advertised, _ in report.rewritten)


async def test_foreign_host_is_followed_only_when_allowed(canary: Canary) -> None:
    cam = SimCamera("cam-nat", advertised_host=canary.host, advertised_port=canary.port)
    await cam.start()
    client = OnvifClient(fast_config(cam, allow_foreign_hosts=True), "sim-password")
    try:
        await client.connect()
        with pytest.raises(Exception):  # noqa: B017  the canary is no ONVIF service
            await client.profiles()
    finally:
        await client.close()
        await cam.stop()
    assert canary.hits  # proves the other test would notice a followed address


async def test_guard_refuses_a_redirect_to_another_host(canary: Canary) -> None:
    from aiohttp import web

    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(canary.url)

    app = web.Application()
    app.router.add_get("/", redirect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    guard = HttpGuard("127.0.0.1", 1024)
    try:
        async with aiohttp.ClientSession(middlewares=(guard,)) as session:
            with pytest.raises(ForeignHostRefused):
                await session.get(f"http://127.0.0.1:{port}/")
    finally:
        await runner.cleanup()
    assert canary.hits == []
    assert guard.refused == [canary.url]


@pytest.mark.parametrize(
    ("url", "allow", "expected"),
    [
        ("http://192.168.1.64/onvif/events", False, ("http://cam.example:8080/onvif/events", True)),
        ("http://cam.example:81/onvif/x", False, ("http://cam.example:81/onvif/x", False)),
        ("http://192.168.1.64/onvif/events", True, ("http://192.168.1.64/onvif/events", False)),
        ("http://user:pw@10.0.0.9:80/snap.jpg", False, ("http://cam.example:8080/snap.jpg", True)),
        ("file:///etc/passwd", False, (None, False)),
        ("gopher://x/", True, (None, False)),
        (None, False, (None, False)),
    ],
)
def test_rewrite_advertised(
    url: str | None, allow: bool, expected: tuple[str | None, bool]
) -> None:
    assert rewrite_advertised(url, "cam.example", 8080, allow_foreign=allow) == expected


def test_stream_uri_keeps_its_own_port_when_rewritten() -> None:
    got = rewrite_advertised(
        "rtsp://10.1.1.1:554/main", "cam.example", 80, allow_foreign=False, keep_port=True
    )
    assert got == ("rtsp://cam.example:554/main", True)
