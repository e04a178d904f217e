"""The DC-09 listeners on loopback: TCP and UDP, several frames per connection, bad input
answered and recorded while the listener goes on; and every parser fuzzed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.config.sites import DeviceConfig, SiteConfig, SiteRegistry
from gateway.demo.simulator.sia_panel import send_frame
from gateway.receivers.sia import frame as f
from gateway.receivers.sia.codes import UnknownCode, contact_id, sia_dcs
from gateway.receivers.sia.config import SiaPanelConfig, SiaReceiverConfig
from gateway.receivers.sia.receiver import SiaReceiver
from gateway.receivers.sia.server import SiaServer
from tests.receivers.fakes import FakeSink

REGISTRY = SiteRegistry(
    [
        SiteConfig(
            id="demo",
            devices=[
                DeviceConfig(
                    id="panel-1234",
                    kind="alarm",
                    sia=SiaPanelConfig(account="1234", zones={"15": "h"}),
                )
            ],
        )
    ]
)


@pytest.fixture
async def server() -> AsyncIterator[tuple[SiaServer, FakeSink]]:
    sink = FakeSink()
    config = SiaReceiverConfig(enabled=True, port=0, idle_timeout_s=5)
    srv = SiaServer(SiaReceiver(config, REGISTRY, sink))  # type: ignore[arg-type]
    await srv.start()
    try:
        yield srv, sink
    finally:
        await srv.stop()


async def test_tcp_connection_carries_several_frames_and_survives_garbage(server) -> None:  # type: ignore[no-untyped-def]
    srv, sink = server
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.tcp_port)
    frames = [
        f.build_frame("NULL", 1, "1234", ""),
        b"\n\x00\xff garbage without sense\r",
        f.build_frame("ADM-CID", 2, "1234", "1120 01 015"),
    ]
    writer.write(b"".join(frames))  # back to back, as a panel with a queue sends them
    await writer.drain()
    answers = [await asyncio.wait_for(reader.readuntil(b"\r"), 5) for _ in frames]
    assert [a[9:14] for a in answers] == [b'"ACK"', b'"NAK"', b'"ACK"']
    assert b"0002" in answers[2]
    writer.close()
    assert [e.type.value for e in sink.events] == ["heartbeat", "panic"]
    assert sink.reasons() == ["malformed_frame"]


async def test_udp(server) -> None:  # type: ignore[no-untyped-def]
    srv, sink = server
    answer = await send_frame(
        "127.0.0.1",
        srv.udp_port,
        f.build_frame("ADM-CID", 3, "1234", "1120 01 015"),
        transport="udp",
    )
    assert answer is not None and b'"ACK"0003' in answer
    broken = bytearray(f.build_frame("ADM-CID", 4, "1234", "1120 01 015"))
    broken[-3] ^= 1
    bad = await send_frame("127.0.0.1", srv.udp_port, bytes(broken), transport="udp")
    assert bad is not None and b'"NAK"' in bad
    # a short unreadable datagram gets no answer larger than itself (spoofed-source floods)
    tiny = await send_frame(
        "127.0.0.1", srv.udp_port, b"\n0000xx\r", transport="udp", timeout_s=0.5
    )
    assert tiny is None
    assert sink.reasons() == ["bad_crc", "malformed_frame"]
    assert [e.type.value for e in sink.events] == ["panic"]


async def test_oversize_stream_is_naked_and_closed(server) -> None:  # type: ignore[no-untyped-def]
    srv, sink = server
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.tcp_port)
    writer.write(b"\n" + b"A" * (f.MAX_FRAME + 10))
    await writer.drain()
    answer = await asyncio.wait_for(reader.readuntil(b"\r"), 5)
    assert b'"NAK"' in answer
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed
    writer.close()
    assert sink.reasons() == ["oversize"]
    # and the listener still answers the next panel
    ok = await send_frame("127.0.0.1", srv.tcp_port, f.build_frame("NULL", 4, "1234", ""))
    assert ok is not None and b'"ACK"' in ok


# -- fuzzing --------------------------------------------------------------------------------
GOOD = [
    f.build_frame("ADM-CID", 1, "1234", "1120 01 015"),
    f.build_frame("SIA-DCS", 2, "1234", "Nri1/PA015/BA003", at=datetime(2026, 1, 1, tzinfo=UTC)),
    f.build_frame("NULL", 3, "1234", ""),
]


def mutations() -> st.SearchStrategy[bytes]:
    def mutate(base: bytes, at: int, value: int, cut: int) -> bytes:
        data = bytearray(base)
        data[at % len(data)] = value
        return bytes(data[: max(cut, 1)])

    return st.one_of(
        st.binary(max_size=300),
        st.builds(
            mutate,
            st.sampled_from(GOOD),
            st.integers(0, 200),
            st.integers(0, 255),
            st.integers(1, 300),
        ),
    )


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(raw=mutations())
def test_fuzz_frames_never_crash_and_never_ack_a_broken_frame(raw: bytes) -> None:
    sink = FakeSink()
    clock = lambda: datetime(2026, 1, 1, tzinfo=UTC)  # noqa: E731 - the GOOD frames' time
    receiver = SiaReceiver(SiaReceiverConfig(enabled=True), REGISTRY, sink, clock=clock)  # type: ignore[arg-type]
    answer = asyncio.run(receiver.handle(raw, transport="tcp", peer="fuzz"))
    assert answer is not None
    f.split_frame(answer)  # our answer is always a well-formed frame
    try:
        f.split_frame(raw)
        intact = True
    except f.FrameError:
        intact = False
    if not intact:
        assert b'"NAK"' in answer and sink.events == []
    if b"ACK" in answer[9:15]:
        assert intact


@settings(max_examples=400, deadline=None)
@given(data=st.text(max_size=80))
def test_fuzz_code_parsers(data: str) -> None:
    for parse in (contact_id, sia_dcs):
        try:
            events = parse(data)
        except UnknownCode:
            continue
        assert 1 <= len(events) <= 33
