"""The GB/T 28181 SIP server on loopback, driven by the simulated camera (UDP) and a raw TCP
client: registration with digest, keepalive, alarms, catalog, expiry, bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.config.sites import DeviceConfig, SiteConfig, SiteRegistry
from gateway.demo.simulator.gb28181_camera import SimulatedCamera
from gateway.events import EventType
from gateway.receivers.gb28181 import manscdp, sip
from gateway.receivers.gb28181.config import Gb28181DeviceConfig, Gb28181ServerConfig
from gateway.receivers.gb28181.server import Gb28181Server
from tests.receivers.fakes import FakeSink

DEV = "31010800001320000001"
PANIC_COLUMN = "31010800001340000009"
SERVER_ID, DOMAIN = "31010800002000000001", "3101080000"


class Monotonic:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def rig(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[Gb28181Server, FakeSink, Monotonic]]:
    monkeypatch.setenv("LF_TEST_GB_PW", "s3cret")
    registry = SiteRegistry([
        SiteConfig(id="demo", devices=[
            DeviceConfig(id=DEV, kind="perimeter", zone="南门", gb28181=Gb28181DeviceConfig()),
            DeviceConfig(id=PANIC_COLUMN, kind="alarm", household="1-1-101", gb28181=Gb28181DeviceConfig()),
            DeviceConfig(id="31010800001320000077", kind="perimeter"),  # not a GB device
        ])
    ])  # fmt: skip
    config = Gb28181ServerConfig(
        enabled=True, port=0, server_id=SERVER_ID, domain=DOMAIN, password_env="LF_TEST_GB_PW",
        keepalive_timeout_s=180, max_message_bytes=8192,
    )  # fmt: skip
    sink, mono = FakeSink(), Monotonic()
    server = Gb28181Server(config, registry, sink, monotonic=mono)  # type: ignore[arg-type]
    await server.start()
    try:
        yield server, sink, mono
    finally:
        await server.stop()


async def camera(
    server: Gb28181Server, device_id: str = DEV, password: str = "s3cret"
) -> SimulatedCamera:
    cam = SimulatedCamera(device_id, server_id=SERVER_ID, domain=DOMAIN, password=password,
                          host="127.0.0.1", port=server.transport.udp_port or 0)  # fmt: skip
    await cam.open()
    return cam


async def until(predicate, within_s: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + within_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_register_challenge_then_ok_keepalive_alarm_catalog(rig) -> None:  # type: ignore[no-untyped-def]
    server, sink, _ = rig
    cam = await camera(server)
    try:
        first = await cam.send(cam._request("REGISTER", extra=[("Expires", "3600")]))
        assert first.status == 401 and 'realm="3101080000"' in (first.get("WWW-Authenticate") or "")
        assert await cam.register() == 200
        assert [e.type for e in sink.events] == [EventType.ONLINE]
        # the server asks for the catalog and learns the channel
        await until(lambda: bool(server.sessions.get(DEV) and server.sessions.get(DEV).channels))  # type: ignore[union-attr]
        assert DEV in server.sessions.get(DEV).channels  # type: ignore[union-attr]
        assert await cam.keepalive() == 200
        assert await cam.alarm(method=5, alarm_type=6) == 200
        alarm = sink.events[-1]
        assert (alarm.type, alarm.device_id, alarm.kind) == (EventType.INTRUSION, DEV, "perimeter")
        assert alarm.attributes.extra["authenticated"] is True
        # the alarm response (报警通知应答) follows the 200
        await until(lambda: any(b"<CmdType>Alarm</CmdType>" in m.body for m in cam.received))
        response = next(m for m in cam.received if b"Alarm" in m.body)
        assert manscdp.parse(response.body).fields["Result"] == "OK"
        assert [e.type for e in sink.events] == [
            EventType.ONLINE,
            EventType.HEARTBEAT,
            EventType.INTRUSION,
        ]
    finally:
        cam.close()


async def test_wrong_password_and_unknown_devices_are_refused(rig) -> None:  # type: ignore[no-untyped-def]
    server, sink, _ = rig
    wrong = await camera(server, password="nope")
    stranger = await camera(server, device_id="31010800001320000999")
    not_gb = await camera(server, device_id="31010800001320000077")
    try:
        assert await wrong.register() == 403
        assert await stranger.register() == 403
        assert await not_gb.register() == 403
        assert await stranger.keepalive() == 403
        assert await wrong.keepalive() == 403  # known, but not registered
        assert sink.events == []
        assert sink.reasons() == [
            "unauthenticated",
            "unknown_device",
            "unknown_device",
            "unknown_device",
        ]
        # an unknown device's emergency alarm goes to the unregistered-panic entry point
        assert await stranger.alarm(method=1, alarm_type=None, priority=1) == 403
        assert [p["device_id"] for p in sink.panics] == ["31010800001320000999"]
    finally:
        for cam in (wrong, stranger, not_gb):
            cam.close()


async def test_alarm_from_panic_column_is_a_panic_even_before_registering(rig) -> None:  # type: ignore[no-untyped-def]
    server, sink, _ = rig
    cam = await camera(server, device_id=PANIC_COLUMN)
    try:
        assert await cam.alarm(method=1, alarm_type=None, priority=1) == 200  # never dropped
        (panic,) = sink.events
        assert panic.type is EventType.PANIC and panic.attributes.household == "1-1-101"  # type: ignore[union-attr]
        assert panic.attributes.extra["authenticated"] is False
    finally:
        cam.close()


async def test_alarm_not_stored_in_time_is_answered_500(rig) -> None:  # type: ignore[no-untyped-def]
    server, sink, _ = rig
    cam = await camera(server)
    try:
        assert await cam.register() == 200
        sink.stored = False
        assert await cam.alarm() == 500
    finally:
        cam.close()


async def test_expiry_unregister_and_keepalive_timeout(rig) -> None:  # type: ignore[no-untyped-def]
    server, sink, mono = rig
    cam = await camera(server)
    try:
        assert await cam.register(expires=5) == 423  # below expires_min_s
        assert await cam.register(expires=600) == 200
        mono.t += 181
        assert [e.type for e in server.sessions.due()] == [EventType.OFFLINE]  # keepalive timeout
        assert await cam.keepalive() == 200
        assert [e.type for e in sink.events[-2:]] == [EventType.ONLINE, EventType.HEARTBEAT]
        mono.t += 601
        assert [e.type for e in server.sessions.due()] == [EventType.OFFLINE]  # expired
        assert server.sessions.get(DEV) is None
        assert await cam.register(expires=600) == 200
        assert await cam.register(expires=0) == 200  # unregister
        assert sink.events[-1].type is EventType.OFFLINE and server.sessions.get(DEV) is None
    finally:
        cam.close()


async def test_bad_input_is_answered_and_quarantined(rig) -> None:  # type: ignore[no-untyped-def]
    server, sink, _ = rig
    cam = await camera(server)
    try:
        assert await cam.register() == 200
        dtd = b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><Notify><CmdType>&x;</CmdType></Notify>'
        assert (await cam.send(cam._request("MESSAGE", dtd))).status == 400
        assert (await cam.send(cam._request("MESSAGE", b"<Notify><CmdType>Ke"))).status == 400
        unknown = manscdp.alarm_notify(1, DEV, priority=1, method=9, alarm_type=None, time="")
        assert (await cam.send(cam._request("MESSAGE", unknown))).status == 400
        assert (await cam.send(cam._request("INVITE"))).status == 405
        big = cam._request("MESSAGE", b"<Notify>" + b"x" * 9000 + b"</Notify>")
        cam.transport.sendto(big)  # type: ignore[union-attr]
        assert await cam.keepalive() == 200  # still serving
        await until(lambda: "oversize" in sink.reasons())
        assert sink.reasons()[:3] == ["forbidden_xml", "malformed_xml", "unknown_code"]
    finally:
        cam.close()


async def test_udp_retransmission_gets_the_same_answer_once_handled(rig) -> None:  # type: ignore[no-untyped-def]
    server, sink, _ = rig
    sink.delay_s = 0.3  # storage takes a while: the camera retransmits meanwhile
    cam = await camera(server)
    try:
        assert await cam.register() == 200
        body = manscdp.notify("Keepalive", 1, DEV, Status="OK")
        request = cam._request("MESSAGE", body)
        cam.transport.sendto(request)  # type: ignore[union-attr]
        cam.transport.sendto(request)  # type: ignore[union-attr]
        assert (await cam.send(request)).status == 200
        await asyncio.sleep(0.4)
        assert [e.type for e in sink.events].count(EventType.HEARTBEAT) == 1
    finally:
        cam.close()


async def test_tcp_register_and_alarm_on_one_connection(rig) -> None:  # type: ignore[no-untyped-def]
    server, sink, _ = rig
    reader, writer = await asyncio.open_connection("127.0.0.1", server.transport.tcp_port)
    host, port = writer.get_extra_info("sockname")[:2]

    def request(method: str, cseq: int, body: bytes = b"", auth: str | None = None) -> bytes:
        headers = [
            ("Via", f"SIP/2.0/TCP {host}:{port};branch=z9hG4bKt{cseq}"),
            ("From", f"<sip:{DEV}@{DOMAIN}>;tag=t"), ("To", f"<sip:{DEV}@{DOMAIN}>"),
            ("Call-ID", f"tcp-{cseq}"), ("CSeq", f"{cseq} {method}"), ("Expires", "3600"),
        ]  # fmt: skip
        if auth:
            headers.append(("Authorization", auth))
        if body:
            headers.append(("Content-Type", sip.MANSCDP))
        return bytes(sip.SipMessage(method, f"sip:{SERVER_ID}@{DOMAIN}", 0, headers, body))

    buffer = bytearray()

    async def answer() -> sip.SipMessage:
        from gateway.receivers.gb28181.transport import next_message

        while True:
            message = next_message(buffer, 65536)
            if message is not None:
                parsed = sip.parse(message, 65536)
                if not parsed.is_request:
                    return parsed
                writer.write(bytes(sip.response(parsed, 200, "OK")))  # the server's requests
                continue
            buffer.extend(await asyncio.wait_for(reader.read(65536), 5))

    from gateway.receivers.gb28181.digest import authorization

    writer.write(request("REGISTER", 1))
    challenge = (await answer()).get("WWW-Authenticate") or ""
    nonce = challenge.split('nonce="')[1].split('"')[0]
    auth = authorization(username=DEV, realm=DOMAIN, nonce=nonce, method="REGISTER",
                         uri=f"sip:{SERVER_ID}@{DOMAIN}", password="s3cret")  # fmt: skip
    writer.write(request("REGISTER", 2, auth=auth))
    assert (await answer()).status == 200
    alarm = manscdp.alarm_notify(
        3, DEV, priority=2, method=5, alarm_type=5, time="2026-12-04T08:00:00"
    )
    writer.write(request("MESSAGE", 3, alarm))
    assert (await answer()).status == 200
    writer.close()
    assert [e.type for e in sink.events] == [EventType.ONLINE, EventType.LINE_CROSSING]
    assert sink.events[-1].attributes.extra["transport"] == "tcp"


# -- fuzzing the whole request path ---------------------------------------------------------
def _seed_messages() -> list[bytes]:
    def req(method: str, body: bytes = b"", extra: str = "") -> bytes:
        head = (
            f"{method} sip:{SERVER_ID}@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5999;branch=z9hG4bKf\r\n"
            f"From: <sip:{DEV}@{DOMAIN}>;tag=1\r\nTo: <sip:{SERVER_ID}@{DOMAIN}>\r\nCall-ID: fz\r\n"
            f"CSeq: 1 {method}\r\n{extra}Content-Type: Application/MANSCDP+xml\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    return [
        req("REGISTER", extra="Expires: 3600\r\n"),
        req(
            "REGISTER",
            extra='Authorization: Digest username="x", realm="3101080000", nonce="00", uri="sip:a", response="00"\r\n',
        ),
        req("MESSAGE", manscdp.notify("Keepalive", 1, DEV, Status="OK")),
        req(
            "MESSAGE",
            manscdp.alarm_notify(
                1, DEV, priority=1, method=5, alarm_type=6, time="2026-01-01T00:00:00"
            ),
        ),
        req(
            "NOTIFY",
            manscdp.alarm_notify(2, PANIC_COLUMN, priority=1, method=1, alarm_type=None, time=""),
        ),
    ]


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SEEDS = _seed_messages()


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    base=st.sampled_from(SEEDS),
    at=st.integers(0, 2000),
    value=st.binary(min_size=0, max_size=8),
    cut=st.integers(1, 2000),
)
def test_fuzz_requests_never_break_the_server(
    monkeypatch: pytest.MonkeyPatch, base: bytes, at: int, value: bytes, cut: int
) -> None:
    monkeypatch.setenv("LF_TEST_GB_PW", "s3cret")
    registry = SiteRegistry([SiteConfig(id="demo", devices=[
        DeviceConfig(id=DEV, kind="perimeter", gb28181=Gb28181DeviceConfig()),
        DeviceConfig(id=PANIC_COLUMN, kind="alarm", gb28181=Gb28181DeviceConfig()),
    ])])  # fmt: skip
    config = Gb28181ServerConfig(enabled=True, port=0, server_id=SERVER_ID, domain=DOMAIN,
                                 password_env="LF_TEST_GB_PW", ack_timeout_s=1)  # fmt: skip
    sink = FakeSink()
    server = Gb28181Server(config, registry, sink)  # type: ignore[arg-type]
    sent: list[bytes] = []
    server.transport.send = lambda peer, data: sent.append(data) or True  # type: ignore[method-assign]
    data = (base[:at] + value + base[at:])[:cut]
    asyncio.run(server.handle(data, sip.Peer("udp", "127.0.0.1", 5999)))
    for answer in sent:
        status = sip.parse(answer, 65536).status
        if status == 0:
            continue  # a request of ours (the alarm response)
        assert status in (200, 400, 401, 403, 405, 413, 415, 423, 500), status
        if status == 200 and b"Alarm" in data:
            assert sink.events or sink.panics  # never a 200 for an alarm that was not taken


async def test_port_zero_takes_another_pair_when_the_twin_port_is_taken(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With port 0, UDP gets a free port and TCP the same number; when another program holds
    that number for TCP, another pair is taken instead of failing the start."""
    import socket as _socket

    from gateway.receivers.gb28181.transport import SipTransport

    async def ignore(*_args: object) -> None:
        return None

    with _socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        busy = taken.getsockname()[1]
        transport = SipTransport("127.0.0.1", 0, udp=True, tcp=True, limit=4096, handler=ignore)  # type: ignore[arg-type]
        real = transport._bind
        tried: list[int] = []

        async def first_on_the_busy_number(port: int) -> None:
            tried.append(port)
            await real(busy if len(tried) == 1 else port)

        monkeypatch.setattr(transport, "_bind", first_on_the_busy_number)
        await transport.start()
        try:
            assert len(tried) == 2
            assert transport.udp_port == transport.tcp_port != busy
        finally:
            await transport.stop()
