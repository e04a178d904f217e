"""ONVIF adapter against the camera simulator: connect, subscribe, every event kind, renewal,
restart and re-subscription, offline, wrong password, silence, refused renewal."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from device_adapters.onvif import HealthState
from device_adapters.onvif.client import OnvifClient
from gateway.demo.camera_sim import SAMPLE_EVENTS, SimCamera
from tests.support.onvif_sim import Sink, fast_config, manager, wait_until

EXPECTED = {
    "motion": ("perimeter", "motion"),
    "motion_alarm": ("perimeter", "motion"),
    "intrusion": ("perimeter", "intrusion"),
    "line_crossing": ("perimeter", "line_crossing"),
    "tamper": ("perimeter", "tamper"),
    "scene_change": ("perimeter", "tamper"),
    "digital_input": ("perimeter", "alarm_input"),
    "access_granted": ("access", "access_granted"),
    "access_denied": ("access", "access_denied"),
    "door_forced_open": ("access", "door_forced_open"),
    "door_open_too_long": ("access", "door_held_open"),
    "door_tamper": ("access", "tamper"),
}


@pytest.fixture
async def cam() -> AsyncIterator[SimCamera]:
    camera = SimCamera("cam-a")
    await camera.start()
    yield camera
    await camera.stop()


async def test_client_reads_device_services_profiles_and_uris_on_a_skewed_camera() -> None:
    camera = SimCamera("cam-skew", clock_skew_s=3600)  # an hour ahead: digest login still works
    await camera.start()
    client = OnvifClient(fast_config(camera), "sim-password")
    try:
        await client.connect()
        report = await client.report()
    finally:
        await client.close()
        await camera.stop()
    assert abs(report.clock_offset_s - 3600) < 2
    assert (report.manufacturer, report.model) == ("Lianfang", "SimCam-1")
    assert "http://www.onvif.org/ver10/events/wsdl" in report.services
    assert report.pullpoint is True
    assert [p.token for p in report.profiles] == ["main", "sub"]
    main = report.profiles[0]
    assert (main.width, main.height, main.encoding) == (1920, 1080, "H264")
    assert main.stream_uri == "rtsp://127.0.0.1:554/main"
    assert main.snapshot_uri == f"http://127.0.0.1:{camera.port}/onvif/snapshot.jpg"
    assert camera.stats.auth_failures == 0


async def test_snapshot_with_digest_auth(cam: SimCamera) -> None:
    client = OnvifClient(fast_config(cam), "sim-password")
    try:
        await client.connect()
        jpeg = await client.snapshot("main")
    finally:
        await client.close()
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8" and jpeg[-2:] == b"\xff\xd9"


async def test_every_event_kind_becomes_its_event_type(cam: SimCamera) -> None:
    sink = Sink()
    mgr = manager([fast_config(cam)], sink)
    await mgr.start()
    try:
        await wait_until(lambda: mgr.status()["cam-a"].state is HealthState.ONLINE)
        for kind in EXPECTED:
            cam.inject_kind(kind)
        await wait_until(lambda: len(sink.of("cam-a")) >= 1 + len(EXPECTED))
    finally:
        await mgr.stop()
    got = [(e.kind.value, e.type.value) for e in sink.of("cam-a") if e.type.value != "online"]
    assert got == [EXPECTED[k] for k in EXPECTED]
    assert set(EXPECTED) == set(SAMPLE_EVENTS)
    assert sink.health("cam-a") == [("online", "connected")]
    assert all(e.source == "onvif" for e in sink.events)


async def test_event_time_is_corrected_for_the_camera_clock() -> None:
    camera = SimCamera("cam-late", clock_skew_s=-7200)  # two hours behind
    await camera.start()
    sink = Sink()
    mgr = manager([fast_config(camera)], sink)
    await mgr.start()
    try:
        await wait_until(lambda: mgr.status()["cam-late"].state is HealthState.ONLINE)
        camera.inject_kind("intrusion")
        await wait_until(lambda: bool(sink.of("cam-late", "intrusion")))
    finally:
        await mgr.stop()
        await camera.stop()
    event = sink.of("cam-late", "intrusion")[0]
    assert abs((event.occurred_at - event.received_at).total_seconds()) < 3
    assert abs(mgr.status()["cam-late"].clock_offset_s + 7200) < 2  # type: ignore[operator]


async def test_redelivered_notification_keeps_its_event_id(cam: SimCamera) -> None:
    sink = Sink()
    mgr = manager([fast_config(cam)], sink)
    await mgr.start()
    try:
        await wait_until(lambda: mgr.status()["cam-a"].state is HealthState.ONLINE)
        at = datetime(2026, 5, 1, 8, 0, 0, tzinfo=UTC)
        topic, source, data = SAMPLE_EVENTS["line_crossing"]
        cam.inject(topic, source, data, utc_time=at)
        cam.inject(topic, source, data, utc_time=at)
        cam.inject(topic, source, {"ObjectId": "18"}, utc_time=at)
        await wait_until(lambda: len(sink.of("cam-a", "line_crossing")) == 3)
    finally:
        await mgr.stop()
    ids = [e.event_id for e in sink.of("cam-a", "line_crossing")]
    assert ids[0] == ids[1] != ids[2]


async def test_subscription_is_renewed_before_it_terminates(cam: SimCamera) -> None:
    sink = Sink()
    config = fast_config(cam, subscription_s=3, renew_margin_s=2)
    mgr = manager([config], sink)
    await mgr.start()
    try:
        await wait_until(lambda: cam.stats.renewals >= 2)
        cam.inject_kind("motion")
        await wait_until(lambda: bool(sink.of("cam-a", "motion")))
    finally:
        await mgr.stop()
    assert cam.stats.subscriptions_created == 1  # never lapsed, never recreated
    status = mgr.status()["cam-a"]
    assert status.renewals >= 2
    assert sink.health("cam-a") == [("online", "connected")]


async def test_camera_restart_is_reported_and_resubscribed(cam: SimCamera) -> None:
    sink = Sink()
    mgr = manager([fast_config(cam)], sink)
    await mgr.start()
    try:
        await wait_until(lambda: cam.subscriptions() == 1)
        await cam.restart()  # the camera forgets its subscriptions
        await wait_until(lambda: cam.stats.subscriptions_created == 2 and cam.subscriptions() == 1)
        cam.inject_kind("intrusion")
        await wait_until(lambda: bool(sink.of("cam-a", "intrusion")))
    finally:
        await mgr.stop()
    health = sink.health("cam-a")
    assert health[0] == ("online", "connected")
    assert health[1][0] == "offline"
    assert health[1][1] in ("subscription_lost", "unreachable")
    assert health[-1] == ("online", "resubscribed") or health[-1] == ("online", "connected")


async def test_subscription_forgotten_without_reboot_is_recreated(cam: SimCamera) -> None:
    import httpx

    sink = Sink()
    mgr = manager([fast_config(cam)], sink)
    await mgr.start()
    try:
        await wait_until(lambda: cam.subscriptions() == 1)
        async with httpx.AsyncClient() as http:  # the JSON control API
            r = await http.post(f"{cam.url}/sim/restart")
            assert r.status_code == 200
        await wait_until(lambda: len(sink.health("cam-a")) >= 3)
        r2 = None
        async with httpx.AsyncClient() as http:
            r2 = await http.post(f"{cam.url}/sim/events", json={"kind": "door_forced_open"})
        assert r2.status_code == 200
        await wait_until(lambda: bool(sink.of("cam-a", "door_forced_open")))
    finally:
        await mgr.stop()
    assert sink.health("cam-a") == [
        ("online", "connected"),
        ("offline", "subscription_lost"),
        ("online", "resubscribed"),
    ]


async def test_offline_camera_is_unreachable_then_recovers(cam: SimCamera) -> None:
    sink = Sink()
    mgr = manager([fast_config(cam, silent_after_s=1.0)], sink)
    await mgr.start()
    try:
        await wait_until(lambda: mgr.status()["cam-a"].state is HealthState.ONLINE)
        await cam.stop()  # pending pulls fail, then connections are refused
        await wait_until(lambda: mgr.status()["cam-a"].state is HealthState.UNREACHABLE)
        assert "cannot reach" in (mgr.status()["cam-a"].last_error or "")
        await cam.start()
        await wait_until(lambda: mgr.status()["cam-a"].state is HealthState.ONLINE)
    finally:
        await mgr.stop()
    offline = [h for h in sink.health("cam-a") if h[0] == "offline"]
    assert len(offline) == 1  # one offline event per outage, not one per retry
    assert sink.health("cam-a")[-1][0] == "online"


async def test_silent_subscription_raises_a_health_event(cam: SimCamera) -> None:
    sink = Sink()
    mgr = manager([fast_config(cam, silent_after_s=1.0)], sink)
    await mgr.start()
    try:
        await wait_until(lambda: mgr.status()["cam-a"].state is HealthState.ONLINE)
        cam.silent = True  # PullMessages never answers
        await wait_until(lambda: ("offline", "subscription_silent") in sink.health("cam-a"))
        cam.silent = False
        await wait_until(lambda: sink.health("cam-a")[-1] == ("online", "resubscribed"))
    finally:
        await mgr.stop()
    event = sink.of("cam-a", "offline")[0]
    assert "no answer to PullMessages" in str(event.attributes.extra["error"])


async def test_refused_renewal_raises_a_health_event(cam: SimCamera) -> None:
    sink = Sink()
    mgr = manager([fast_config(cam, subscription_s=3, renew_margin_s=2)], sink)
    await mgr.start()
    try:
        await wait_until(lambda: mgr.status()["cam-a"].state is HealthState.ONLINE)
        cam.refuse_renew = True
        await wait_until(lambda: ("offline", "renew_failed") in sink.health("cam-a"))
        cam.refuse_renew = False
        await wait_until(lambda: sink.health("cam-a")[-1] == ("online", "resubscribed"))
    finally:
        await mgr.stop()


async def test_wrong_password_fails_clearly_and_other_cameras_keep_serving() -> None:
    good, bad = SimCamera("cam-good"), SimCamera("cam-bad")
    await good.start()
    await bad.start()
    sink = Sink()
    mgr = manager(
        [fast_config(good), fast_config(bad, password_env="LIANFANG_TEST_WRONG_PASSWORD")], sink
    )
    await mgr.start()
    try:
        await wait_until(lambda: mgr.status()["cam-bad"].state is HealthState.AUTH_FAILED)
        await wait_until(lambda: mgr.status()["cam-good"].state is HealthState.ONLINE)
        good.inject_kind("motion")
        await wait_until(lambda: bool(sink.of("cam-good", "motion")))
    finally:
        await mgr.stop()
        await good.stop()
        await bad.stop()
    status = mgr.status()["cam-bad"]
    assert "authentication refused" in (status.last_error or "")
    assert sink.health("cam-bad") == [("offline", "auth_failed")]
    assert bad.stats.auth_failures >= 1


async def test_unknown_topic_is_quarantined_and_logged_once_as_a_fixture(
    cam: SimCamera, caplog: pytest.LogCaptureFixture
) -> None:
    sink = Sink()
    mgr = manager([fast_config(cam)], sink)
    await mgr.start()
    try:
        await wait_until(lambda: mgr.status()["cam-a"].state is HealthState.ONLINE)
        with caplog.at_level(logging.WARNING, logger="device_adapters.onvif.manager"):
            for _ in range(3):
                cam.inject("tns1:Vendor/Acme/Smoke", {"Sensor": "s1"}, {"Alarm": "true"})
            await wait_until(lambda: len(sink.quarantined) == 3)
    finally:
        await mgr.stop()
    logged = [r for r in caplog.records if "unknown ONVIF topic" in r.getMessage()]
    assert len(logged) == 1
    record = sink.quarantined[0]
    assert record.reason.value == "no_match" and record.device_id == "cam-a"
    import json

    fixture = json.loads(logged[0].getMessage().split("Fixture: ", 1)[1])
    assert fixture["topic"] == "tns1:Vendor/Acme/Smoke" and fixture["data"] == {"Alarm": "true"}
    assert json.loads(record.raw) == fixture
    assert mgr.status()["cam-a"].unknown_topics == 3


async def test_health_event_times_follow_the_injected_clock(cam: SimCamera) -> None:
    fixed = datetime(2030, 1, 1, tzinfo=UTC)
    sink = Sink()
    from device_adapters.onvif import OnvifCameraManager

    mgr = OnvifCameraManager([fast_config(cam)], sink.emit, sink.quarantine, clock=lambda: fixed)
    await mgr.start()
    try:
        await wait_until(lambda: bool(sink.events))
    finally:
        await mgr.stop()
    assert sink.events[0].occurred_at == fixed
    assert mgr.status()["cam-a"].subscription_expires_at is None  # cleared on stop
    assert mgr.status()["cam-a"].state is HealthState.STOPPED
    assert fixed - timedelta(0) == sink.events[0].received_at
