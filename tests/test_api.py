"""HTTP API: health, devices, events, quarantine, docs, and the authentication seam.

Rows go in through the real ``BatchWriter``; the API reads them back over ASGI.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from sqlalchemy import Engine, create_engine, insert

from gateway import __version__
from gateway.api import BrokerHealth, HealthReport, create_app
from gateway.api.deps import Principal, get_current_principal
from gateway.bus import EventBus
from gateway.events import DeviceKind, Event, EventType
from gateway.ingest.pipeline import QuarantineRecord
from gateway.ingest.quarantine import QuarantineSampler
from gateway.ingest.reasons import Reason
from gateway.storage import tables
from gateway.storage.db import make_engine, migrate
from gateway.storage.writer import BatchWriter, WriteItem
from tests.conftest import postgres_database
from tests.support.auth import trusted

T0 = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)


@dataclass
class StubRuntime:
    engine: Engine
    bus: EventBus = field(default_factory=EventBus)
    broker_connected: bool = True

    def health(self) -> HealthReport:
        return HealthReport(
            broker=BrokerHealth(connected=self.broker_connected, host="127.0.0.1", port=1883),
            lag_ms=12.5,
        )


def make_event(
    n: int,
    *,
    site: str = "s1",
    device_id: str = "door-1",
    kind: DeviceKind = DeviceKind.ACCESS,
    type: EventType = EventType.ACCESS_GRANTED,
    occurred_at: datetime | None = None,
    attributes: dict[str, Any] | None = None,
    event_id: str | None = None,
) -> Event:
    occurred = occurred_at or T0 + timedelta(minutes=n)
    return Event(
        event_id=event_id or f"e{n:04d}",
        occurred_at=occurred,
        received_at=occurred + timedelta(seconds=1),
        site=site,
        device_id=device_id,
        kind=kind,
        type=type,
        attributes=attributes or {},
        source="test",
        raw=f'{{"n": {n}}}',
    )


def quarantined(
    n: int,
    raw: bytes = b"not json",
    *,
    reason: Reason = Reason.MALFORMED_JSON,
    device_id: str | None = None,
    size: int | None = None,
) -> QuarantineRecord:
    return QuarantineRecord(
        received_at=T0 + timedelta(minutes=n),
        topic=f"lianfang/v1/s1/dev{n}/event",
        reason=reason,
        detail=f"detail {n}",
        device_id=device_id,
        raw=raw,
        size=len(raw) if size is None else size,
    )


def store(
    engine: Engine,
    events: Sequence[Event] = (),
    records: Sequence[QuarantineRecord] = (),
) -> None:
    """Through the real write path: one WriteItem per event or record, then flush."""
    writer = BatchWriter(engine, interval_s=0.001)
    writer.start()
    for event in events:
        writer.submit(WriteItem(events=[event]))
    for record in records:
        writer.submit(WriteItem(quarantined=record))
    writer.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with ExitStack() as stack:
        if request.param == "postgres":
            url = stack.enter_context(postgres_database())
        else:
            url = f"sqlite:///{tmp_path / 'lianfang.db'}"
        eng = make_engine(url)
        stack.callback(eng.dispose)
        migrate(eng)
        yield eng


@pytest.fixture
def runtime(engine: Engine) -> StubRuntime:
    return StubRuntime(engine)


@pytest.fixture
async def client(runtime: StubRuntime) -> AsyncIterator[httpx.AsyncClient]:
    app = trusted(create_app(runtime))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as c:
        yield c


def seed_events() -> list[Event]:
    """30 events: sites s1/s2, three devices, kinds access/alarm, several types."""
    out: list[Event] = []
    for n in range(30):
        if n % 3 == 0:
            out.append(make_event(n, site="s2", device_id="gate-1", kind=DeviceKind.GATE,
                                  type=EventType.PLATE_READ))  # fmt: skip
        elif n % 3 == 1:
            out.append(make_event(n, device_id="sos-7", kind=DeviceKind.ALARM,
                                  type=EventType.PANIC if n % 2 else EventType.HEARTBEAT))  # fmt: skip
        else:
            out.append(
                make_event(n, type=EventType.ACCESS_DENIED if n % 4 else EventType.DOOR_OPEN)
            )
    return out


async def all_pages(client: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= int(params.get("limit", 100))
        items.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("pagination did not end")


# -- health ---------------------------------------------------------------------------


async def test_health_ok(client: httpx.AsyncClient) -> None:
    body = (await client.get("/api/health")).json()
    assert body["status"] == "ok"
    assert body["version"] == __version__
    assert body["database"]["ok"] is True and body["database"]["error"] is None
    assert body["broker"] == {
        "connected": True, "host": "127.0.0.1", "port": 1883, "reconnects": 0, "last_error": None,
    }  # fmt: skip
    assert body["lag_ms"] == 12.5
    assert set(body["writer"]) >= {"backlog", "stored", "last_commit_age_s", "last_batch_ms"}
    assert set(body["ingest"]) >= {"messages", "events", "duplicates", "rejected"}


async def test_health_degraded_when_database_unreachable(tmp_path: Path) -> None:
    # A path whose directory does not exist: SQLite cannot open it.
    broken = create_engine(f"sqlite:///{tmp_path / 'missing' / 'dir' / 'x.db'}")
    app = trusted(create_app(StubRuntime(broken)))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        response = await c.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["database"]["ok"] is False
    assert "OperationalError" in body["database"]["error"]
    assert "SELECT" not in body["database"]["error"]  # the driver message, not the SQL echo
    broken.dispose()


async def test_health_degraded_when_broker_down(
    runtime: StubRuntime, client: httpx.AsyncClient
) -> None:
    runtime.broker_connected = False
    body = (await client.get("/api/health")).json()
    assert body["status"] == "degraded"
    assert body["database"]["ok"] is True


def test_health_models_from_runtime_parts(engine: Engine) -> None:
    from collections import Counter

    from gateway.api import IngestHealth, WriterHealth
    from gateway.ingest.mqtt import BrokerStatus
    from gateway.ingest.pipeline import IngestStats

    status = BrokerStatus(connected=True, host="mq", port=1883, connects=3, last_error=None)
    assert BrokerHealth.from_status(status).reconnects == 2
    stats = IngestStats(messages=5, events=3, rejected=Counter({"oversize": 2}))
    ingest = IngestHealth.from_stats(stats)
    assert ingest.messages == 5 and ingest.rejected == {"oversize": 2}
    writer = BatchWriter(engine)
    assert WriterHealth.from_writer(writer).last_commit_age_s is None
    writer.stats.last_commit_at = 1000.0
    assert WriterHealth.from_writer(writer, now=1002.5).last_commit_age_s == 2.5


# -- events ---------------------------------------------------------------------------


async def test_events_newest_first_with_filters(engine: Engine, client: httpx.AsyncClient) -> None:
    events = seed_events()
    store(engine, events)

    page = (await client.get("/api/events")).json()
    assert [i["event_id"] for i in page["items"]] == [e.event_id for e in reversed(events)]
    assert page["next_cursor"] is None
    first = page["items"][-1]
    assert first["occurred_at"] == "2026-05-01T00:00:00Z"
    assert first["kind"] == "gate" and first["type"] == "plate_read"
    assert isinstance(first["seq"], int)
    assert "raw" not in first

    async def ids(**params: Any) -> set[str]:
        response = await client.get("/api/events", params=params)
        assert response.status_code == 200, response.text
        return {i["event_id"] for i in response.json()["items"]}

    assert await ids(site="s2") == {e.event_id for e in events if e.site == "s2"}
    assert await ids(device_id="sos-7") == {e.event_id for e in events if e.device_id == "sos-7"}
    assert await ids(kind="alarm") == {e.event_id for e in events if e.kind is DeviceKind.ALARM}
    wanted = {EventType.PANIC, EventType.DOOR_OPEN}
    by_type = {e.event_id for e in events if e.type in wanted}
    assert await ids(type="panic,door_open") == by_type
    assert await ids(type=["panic", "door_open"]) == by_type
    assert await ids(site="s1", kind="alarm", type="heartbeat") == {
        e.event_id for e in events if e.type is EventType.HEARTBEAT
    }
    assert await ids(site=["s1", "s2"]) == {e.event_id for e in events}


async def test_events_time_range_honours_offsets(engine: Engine, client: httpx.AsyncClient) -> None:
    events = seed_events()
    store(engine, events)
    # minutes 5..9 UTC, asked in China Standard Time
    cst = timezone(timedelta(hours=8))
    since = (T0 + timedelta(minutes=5)).astimezone(cst).isoformat()
    until = (T0 + timedelta(minutes=10)).astimezone(cst).isoformat()
    response = await client.get("/api/events", params={"since": since, "until": until})
    assert response.status_code == 200, response.text
    got = [i["event_id"] for i in response.json()["items"]]
    assert got == ["e0009", "e0008", "e0007", "e0006", "e0005"]
    response = await client.get("/api/events", params={"since": "2026-05-01T00:28:00Z"})
    assert [i["event_id"] for i in response.json()["items"]] == ["e0029", "e0028"]


async def test_events_cursor_pagination_has_no_gaps_or_duplicates(
    engine: Engine, client: httpx.AsyncClient
) -> None:
    events = seed_events()
    store(engine, events)
    everything = await all_pages(client, "/api/events", limit=7)
    assert [i["event_id"] for i in everything] == [e.event_id for e in reversed(events)]
    seqs = [i["seq"] for i in everything]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == len(seqs)

    filtered = await all_pages(client, "/api/events", limit=3, site="s1")
    assert [i["event_id"] for i in filtered] == [
        e.event_id for e in reversed(events) if e.site == "s1"
    ]

    exact = await client.get("/api/events", params={"limit": 30})
    assert len(exact.json()["items"]) == 30 and exact.json()["next_cursor"] is None


async def test_events_pagination_stable_while_new_events_arrive(
    engine: Engine, client: httpx.AsyncClient
) -> None:
    events = seed_events()
    store(engine, events)
    first = (await client.get("/api/events", params={"limit": 10})).json()
    store(engine, [make_event(100 + n) for n in range(5)])  # newer than the cursor
    rest = await all_pages(client, "/api/events", limit=10, cursor=first["next_cursor"])
    seen = [i["event_id"] for i in first["items"] + rest]
    assert seen == [e.event_id for e in reversed(events)]


async def test_event_detail_and_404(engine: Engine, client: httpx.AsyncClient) -> None:
    store(engine, [make_event(1, event_id="site/s1/door-1/42", attributes={"zone": "east"})])
    response = await client.get("/api/events/site/s1/door-1/42")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["event_id"] == "site/s1/door-1/42"
    assert body["attributes"] == {"zone": "east"}  # defaults (kind, empty extra) are not stored
    assert body["raw"] == '{"n": 1}'
    missing = await client.get("/api/events/nope")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "event 'nope' not found"}


@pytest.mark.parametrize(
    ("params", "param", "fragment"),
    [
        ({"type": "panic,nonsense"}, "type", "unknown type 'nonsense'"),
        ({"kind": "toaster"}, "kind", "expected one of: access, gate"),
        ({"since": "2026-05-01T00:00:00"}, "since", "timezone offset"),
        ({"since": "yesterday"}, "since", ""),
        ({"since": "2026-05-02T00:00:00Z", "until": "2026-05-01T00:00:00Z"}, "until", "later"),
        ({"limit": "0"}, "limit", ""),
        ({"limit": "1001"}, "limit", ""),
        ({"cursor": "definitely-not-a-cursor"}, "cursor", "pass back next_cursor"),
    ],
)
async def test_events_bad_input_is_422(
    client: httpx.AsyncClient, params: dict[str, str], param: str, fragment: str
) -> None:
    response = await client.get("/api/events", params=params)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert any(e["loc"] == ["query", param] and fragment in e["msg"] for e in errors), errors


async def test_cursor_of_another_listing_is_rejected(
    engine: Engine, client: httpx.AsyncClient
) -> None:
    store(engine, records=[quarantined(n) for n in range(3)])
    cursor = (await client.get("/api/quarantine", params={"limit": 1})).json()["next_cursor"]
    assert cursor
    response = await client.get("/api/events", params={"cursor": cursor})
    assert response.status_code == 422
    assert "another listing" in response.json()["detail"][0]["msg"]


# -- devices --------------------------------------------------------------------------


async def test_devices_state_filters_and_404(engine: Engine, client: httpx.AsyncClient) -> None:
    with engine.begin() as conn:  # what registry sync would write
        conn.execute(
            insert(tables.devices).values(
                id="door-1",
                site="s1",
                kind="access",
                name="East door",
                place="Building 3",
                zone="east",
                registered=True,
                heartbeat_s=60,
            )
        )
        conn.execute(insert(tables.devices).values(
            id="cam-9", site="s2", kind="perimeter", name="Fence cam", registered=True,
            heartbeat_s=60))  # fmt: skip
    store(engine, [
        make_event(1, device_id="door-1", type=EventType.DOOR_OPEN),
        make_event(2, device_id="sos-7", kind=DeviceKind.ALARM, type=EventType.HEARTBEAT,
                   attributes={"battery_pct": 80}),
        make_event(3, device_id="sos-7", kind=DeviceKind.ALARM, type=EventType.OFFLINE),
    ])  # fmt: skip

    page = (await client.get("/api/devices")).json()
    by_id = {d["id"]: d for d in page["items"]}
    assert list(by_id) == ["cam-9", "door-1", "sos-7"]
    door = by_id["door-1"]
    assert door["registered"] is True and door["name"] == "East door"
    assert door["place"] == "Building 3" and door["zone"] == "east"
    assert door["online"] is True and door["last_event_type"] == "door_open"
    assert door["last_seen_at"] == "2026-05-01T00:01:01Z"
    assert door["overdue"] is True  # last heard in May 2026 test time, heartbeat 60 s
    sos = by_id["sos-7"]
    assert sos["registered"] is False and sos["online"] is False
    assert sos["last_event_type"] == "offline" and sos["battery_pct"] == 80
    assert sos["overdue"] is None  # no heartbeat declared
    cam = by_id["cam-9"]
    assert cam["online"] is None and cam["last_seen_at"] is None and cam["overdue"] is True

    async def ids(**params: Any) -> list[str]:
        response = await client.get("/api/devices", params=params)
        assert response.status_code == 200, response.text
        return [d["id"] for d in response.json()["items"]]

    assert await ids(site="s1") == ["door-1", "sos-7"]
    assert await ids(kind="alarm,perimeter") == ["cam-9", "sos-7"]
    assert await ids(online="true") == ["door-1"]
    assert await ids(online="false") == ["sos-7"]
    paged = await all_pages(client, "/api/devices", limit=1)
    assert [d["id"] for d in paged] == ["cam-9", "door-1", "sos-7"]

    assert (await client.get("/api/devices/door-1")).json()["name"] == "East door"
    missing = await client.get("/api/devices/ghost")
    assert missing.status_code == 404 and "ghost" in missing.json()["detail"]
    assert (await client.get("/api/devices", params={"kind": "toaster"})).status_code == 422


# -- quarantine -----------------------------------------------------------------------


async def test_quarantine_raw_rendering_and_filters(
    engine: Engine, client: httpx.AsyncClient
) -> None:
    binary = b'{"card": "\xff\xfe", "nul": "\x00", "esc": "\x1b[31m"}\n'
    store(engine, records=[
        quarantined(1, binary, reason=Reason.INVALID_UTF8),
        quarantined(2, b"x" * 10, reason=Reason.OVERSIZE, size=70_000),
        quarantined(3, "门禁 ok".encode(), reason=Reason.UNKNOWN_DEVICE, device_id="ghost-1"),
    ])  # fmt: skip

    page = (await client.get("/api/quarantine")).json()
    assert [i["reason"] for i in page["items"]] == ["unknown_device", "oversize", "invalid_utf8"]
    unknown, oversize, bad = page["items"]
    assert bad["raw_text"] == '{"card": "\\xff\\xfe", "nul": "\\x00", "esc": "\\x1b[31m"}\n'
    assert base64.b64decode(bad["raw_base64"]) == binary
    assert bad["raw_truncated"] is False and bad["size"] == len(binary)
    assert bad["topic"] == "lianfang/v1/s1/dev1/event" and bad["detail"] == "detail 1"
    assert bad["received_at"] == "2026-05-01T00:01:00Z"
    assert oversize["raw_truncated"] is True and oversize["size"] == 70_000
    assert unknown["raw_text"] == "门禁 ok" and unknown["device_id"] == "ghost-1"

    async def reasons(**params: Any) -> list[str]:
        response = await client.get("/api/quarantine", params=params)
        assert response.status_code == 200, response.text
        return [i["reason"] for i in response.json()["items"]]

    assert await reasons(reason="oversize,invalid_utf8") == ["oversize", "invalid_utf8"]
    assert await reasons(device_id="ghost-1") == ["unknown_device"]
    assert await reasons(since="2026-05-01T00:02:00Z") == ["unknown_device", "oversize"]
    assert (await client.get("/api/quarantine", params={"reason": "bogus"})).status_code == 422

    detail = await client.get(f"/api/quarantine/{bad['id']}")
    assert detail.status_code == 200 and detail.json()["raw_text"] == bad["raw_text"]
    assert (await client.get("/api/quarantine/999999")).status_code == 404
    assert (await client.get("/api/quarantine/not-a-number")).status_code == 422


async def test_quarantine_listing_bounds_raw(engine: Engine, client: httpx.AsyncClient) -> None:
    big = bytes(range(256)) * 64  # 16 KiB, mostly escapes
    store(engine, records=[quarantined(1, big, reason=Reason.INVALID_UTF8)])
    item = (await client.get("/api/quarantine")).json()["items"][0]
    assert item["raw_truncated"] is True
    assert len(item["raw_text"]) <= 4096
    assert len(base64.b64decode(item["raw_base64"])) <= 4096
    full = (await client.get(f"/api/quarantine/{item['id']}")).json()
    assert base64.b64decode(full["raw_base64"]) == big and full["raw_truncated"] is False


async def test_quarantine_pagination_and_stats(engine: Engine, client: httpx.AsyncClient) -> None:
    reasons = [Reason.MALFORMED_JSON, Reason.NO_PROFILE, Reason.MALFORMED_JSON]
    records = [quarantined(n, reason=reasons[n % 3]) for n in range(20)]
    store(engine, records=records)
    items = await all_pages(client, "/api/quarantine", limit=6)
    ids = [i["id"] for i in items]
    assert len(ids) == 20 == len(set(ids)) and ids == sorted(ids, reverse=True)

    stats = (await client.get("/api/quarantine/stats")).json()
    assert stats["total"] == 20
    assert stats["by_reason"]["malformed_json"] == 13
    assert stats["by_reason"]["no_profile"] == 7
    assert stats["by_reason"]["oversize"] == 0  # every known reason is listed
    recent = await client.get("/api/quarantine/stats", params={"since": "2026-05-01T00:18:00Z"})
    assert recent.json()["total"] == 2
    naive = await client.get("/api/quarantine/stats", params={"since": "2026-05-01T00:18:00"})
    assert naive.status_code == 422


async def test_quarantine_stats_count_every_message_received(
    engine: Engine, client: httpx.AsyncClient
) -> None:
    # Rows are sampled past a rate; the counts (written with each batch) are exact.
    sampler = QuarantineSampler(per_source=2, per_reason=100, total=100)
    writer = BatchWriter(engine, interval_s=0.001, quarantine_counts=sampler.drain)
    writer.start()
    for n in range(12):
        record = quarantined(n // 6, reason=Reason.NO_PROFILE)  # minutes 0 and 1, one topic
        if sampler.admit("no_profile", record.topic[:20], record.received_at):
            writer.submit(WriteItem(quarantined=record))
    writer.submit(WriteItem())
    writer.stop()
    stats = (await client.get("/api/quarantine/stats")).json()
    assert stats["total"] == 4 and stats["by_reason"]["no_profile"] == 4
    assert stats["received_total"] == 12 and stats["received_by_reason"]["no_profile"] == 12
    assert stats["received_by_reason"]["oversize"] == 0  # every known reason is listed
    later = await client.get("/api/quarantine/stats", params={"since": "2026-05-01T00:01:30Z"})
    assert later.json()["received_total"] == 6  # the minute holding `since` counts whole
    assert later.json()["total"] == 0  # stored rows: by their own time (00:01:00)


# -- docs, seam, extra routers --------------------------------------------------------


async def test_openapi_and_offline_docs(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/api/openapi.json")).json()
    assert schema["info"]["title"] == "Lianfang 联防 gateway"
    assert schema["info"]["version"] == __version__
    for path in ("/api/health", "/api/devices", "/api/events", "/api/events/stream",
                 "/api/events/{event_id}", "/api/quarantine", "/api/quarantine/stats"):  # fmt: skip
        assert path in schema["paths"], path

    docs = await client.get("/docs")
    assert docs.status_code == 200
    page = docs.text.lower()
    assert "/api/openapi.json" in page and "/api/events/stream" in page
    for external in ("http://", "https://", "cdn", "<script", "src=", "@import", "url("):
        assert external not in page, external
    assert 'href="//' not in page
    assert "default-src 'none'" in docs.headers["content-security-policy"]
    assert (await client.get("/redoc")).status_code == 404


async def test_every_route_goes_through_the_auth_seam(runtime: StubRuntime) -> None:
    extra = APIRouter(prefix="/api/extra")

    @extra.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    app = trusted(create_app(runtime, extra_routers=[extra]))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        assert (await c.get("/api/extra/ping")).json() == {"pong": "yes"}
        app.dependency_overrides[get_current_principal] = lambda: Principal("nobody")
        for path in ("/api/health", "/api/devices", "/api/devices/x", "/api/events",
                     "/api/events/x", "/api/events/stream", "/api/quarantine",
                     "/api/quarantine/stats", "/api/quarantine/1"):  # fmt: skip
            response = await c.get(path)
            assert response.status_code == 403, (path, response.status_code)
            assert "needs permission" in response.json()["detail"]

        def refuse() -> Principal:
            from fastapi import HTTPException

            raise HTTPException(401, "who are you")

        app.dependency_overrides[get_current_principal] = refuse
        assert (await c.get("/api/extra/ping")).status_code == 401
        assert (await c.get("/docs")).status_code == 401
