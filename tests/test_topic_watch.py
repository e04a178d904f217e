"""Topic watches and profile trials (gateway/watch): what arrives on a filter and which
profile would take it, bounded in time and messages, permission-checked, held in memory only;
and what a profile makes of a quarantined message now."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from device_adapters.base import DeviceInfo
from device_adapters.registry import load_adapters
from gateway.auth.roles import AccountRole
from gateway.auth.service import CLI
from gateway.config.settings import IngestConfig, MqttConfig, load_gateway_config
from gateway.events import DeviceKind, utcnow
from gateway.runtime import Gateway
from gateway.server import build_app
from gateway.storage import tables
from gateway.watch.topics import TopicWatches, filter_problem
from gateway.watch.trial import Verdict, verdict_for
from tests.support.brokers import MosquittoBroker
from tests.support.compound import SITE, Publisher, event_payload, topic, write_gateway_config

ROOT = Path(__file__).resolve().parent.parent
ADAPTERS = load_adapters(ROOT / "config" / "profiles", "Asia/Shanghai")
REGISTRY = {"door-1": DeviceInfo(SITE, DeviceKind.ACCESS)}


def judge(topic_: str, raw: bytes, at: datetime) -> Verdict:
    return verdict_for(ADAPTERS, topic_, raw, lookup=REGISTRY.get, config=IngestConfig(),
                       received_at=at)  # fmt: skip


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("lianfang/#", None),
        ("+/+/event", None),
        ("#", None),
        ("a/b#", "# stands alone"),
        ("a/#/b", "# stands alone"),
        ("a/b+/c", "+ stands alone"),
        ("$SYS/#", "broker's own topics"),
        ("", "1 to 256"),
        ("a\x00b", "control characters"),
        ("x" * 257, "1 to 256"),
    ],
)
def test_filters(value: str, problem: str | None) -> None:
    found = filter_problem(value)
    assert (found is None) if problem is None else (found is not None and problem in found)


def test_verdicts_say_what_the_gateway_would_do() -> None:
    at = utcnow()
    ok = judge(topic("door-1"), event_payload(1), at)
    assert ok.ok and ok.profile == "lianfang" and ok.accepting == ["lianfang"]
    assert [(e.kind.value, e.type.value, e.device_id) for e in ok.events] == [
        ("access", "access_granted", "door-1")
    ]
    nobody = judge("acme/site/door-9/evt", b'{"x": 1}', at)
    assert (nobody.profile, nobody.reason) == (None, "no_profile")
    unknown = judge(topic("door-77"), event_payload(1, "door-77"), at)
    assert (unknown.profile, unknown.reason) == ("lianfang", "unknown_device")
    assert "door-77" in unknown.detail
    bad = judge(topic("door-1"), b'{"v": 1, ', at)
    assert bad.reason == "malformed_json"
    panic = judge(topic("panic-9"), event_payload(1, "panic-9", "panic"), at)
    assert panic.reason == "unknown_device" and panic.panic  # raised as a P1 all the same


class Inbox:
    def __init__(self) -> None:
        self.watches: list[TopicWatches] = []

    def make(self, port: int, **kw: Any) -> TopicWatches:
        w = TopicWatches(MqttConfig(host="127.0.0.1", port=port), judge, **kw)
        self.watches.append(w)
        return w


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox()
    yield box
    for w in box.watches:
        w.close()


def wait_for(predicate: Callable[[], bool], within_s: float = 10.0) -> None:
    deadline = time.monotonic() + within_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def publish(port: int, messages: list[tuple[str, bytes]]) -> None:
    pub = Publisher(port, client_id=f"watch-pub-{time.monotonic_ns()}")
    try:
        pub.publish(messages)
    finally:
        pub.close()


def test_a_watch_shows_what_arrives_and_stops_at_its_bounds(
    mosquitto: MosquittoBroker, inbox: Inbox
) -> None:
    watches = inbox.make(mosquitto.port)
    watch = watches.start("alice", "#", duration_s=60, max_messages=3)
    wait_for(lambda: watch.state == "watching")
    publish(mosquitto.port, [
        (topic("door-1"), event_payload(1)),
        ("acme/site/door-9/evt", b'{"x": 1}'),
        (topic("door-1"), event_payload(2)),
        (topic("door-1"), event_payload(3)),  # the fourth: past the bound
    ])  # fmt: skip
    wait_for(lambda: watch.state == "ended")
    assert watch.end_reason == "messages"
    seen = watch.to_json()["messages"]
    assert [(m["topic"], m["verdict"]["profile"], m["verdict"]["reason"]) for m in seen] == [
        (topic("door-1"), "lianfang", None),
        ("acme/site/door-9/evt", None, "no_profile"),
        (topic("door-1"), "lianfang", None),
    ]
    assert seen[1]["payload"] == '{"x": 1}' and seen[1]["size"] == 8
    # the page asks for the new ones only
    assert [m["topic"] for m in watch.to_json(since=2)["messages"]] == [topic("door-1")]
    # the owner sees it; another person does not; stopping forgets it at once
    assert watches.get("bob", watch.id) is None
    assert watches.stop("alice", watch.id) and watches.get("alice", watch.id) is None


def test_a_watch_ends_on_time_and_watches_are_limited(
    mosquitto: MosquittoBroker, inbox: Inbox
) -> None:
    watches = inbox.make(mosquitto.port, max_watches=2)
    first = watches.start("alice", "lianfang/#", duration_s=0.5)
    with pytest.raises(Exception) as again:
        watches.start("alice", "x/#")
    assert getattr(again.value, "status", None) == 409
    second = watches.start("bob", "x/#")
    with pytest.raises(Exception) as busy:
        watches.start("carol", "y/#")
    assert getattr(busy.value, "status", None) == 429
    wait_for(lambda: first.state == "ended")
    assert first.end_reason == "time" and first.seen == []
    third = watches.start("carol", "y/#")  # the ended one no longer counts
    assert third.state in ("connecting", "watching")
    watches.close()
    assert second.state == "ended" and third.state == "ended"
    with pytest.raises(Exception) as bad:
        watches.start("dave", "a/#/b")
    assert getattr(bad.value, "status", None) == 422


# -- through the running gateway's API ------------------------------------------------------

ACCOUNTS = {
    "admin": (AccountRole.ADMINISTRATOR, {}),
    "integ": (AccountRole.INTEGRATOR, {}),
    "integ-site": (AccountRole.INTEGRATOR, {"sites": [SITE]}),
    "pm": (AccountRole.PROPERTY_MANAGER, {"sites": [SITE]}),
}


@pytest.fixture
async def api(mosquitto: MosquittoBroker, tmp_path: Path) -> AsyncIterator[Any]:
    gateway = Gateway(load_gateway_config(write_gateway_config(tmp_path, mosquitto.port)),
                      protocol="v311")  # fmt: skip
    await gateway.start()
    app = await build_app(gateway)
    auth = app.state.auth
    tokens = {}
    for name, (role, scopes) in ACCOUNTS.items():
        user = auth.create_user(name, None, role, CLI, scopes=scopes)
        tokens[name], _ = auth.create_token(user["id"], "test", CLI)
    assert await gateway.wait_subscribed(15)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")

    async def call(user: str, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {tokens[user]}"}
        return await client.request(method, path, headers=headers, **kw)

    call.gateway = gateway  # type: ignore[attr-defined]
    call.port = mosquitto.port  # type: ignore[attr-defined]
    try:
        yield call
    finally:
        app.state.wire.watches.close()
        await client.aclose()
        await gateway.stop()


async def until(predicate: Callable[[], Any], within_s: float = 15.0) -> Any:
    deadline = time.monotonic() + within_s
    while not (found := await predicate()):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
    return found


async def test_watch_api_end_to_end(api: Any) -> None:
    r = await api("integ", "POST", "/api/watches", json={"filter": "acme/#", "duration_s": 60})
    assert r.status_code == 201, r.text
    watch_id = r.json()["id"]

    async def watching() -> bool:
        got = await api("integ", "GET", f"/api/watches/{watch_id}")
        return bool(got.json()["state"] == "watching")

    await until(watching)
    # a payload on a topic no profile subscribes to: the gateway never sees it, the watch does
    await asyncio.to_thread(publish, api.port, [("acme/gw-1/alarm", b'{"alarm": "fire"}')])

    async def arrived() -> dict[str, Any] | None:
        got = (await api("integ", "GET", f"/api/watches/{watch_id}")).json()
        return got if got["count"] else None

    seen = await arrived() or await until(arrived)
    (message,) = seen["messages"]
    assert message["topic"] == "acme/gw-1/alarm" and message["payload"] == '{"alarm": "fire"}'
    assert message["verdict"]["reason"] == "no_profile" and message["verdict"]["profile"] is None
    # nothing of it was stored: no quarantine row, no event
    with api.gateway.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.quarantine)).scalar() == 0
    # permission-checked: a second watch of the same person, another person's watch, a
    # caller limited to compounds, a role without quarantine:read
    again = await api("integ", "POST", "/api/watches", json={"filter": "b/#"})
    assert again.status_code == 409
    assert (await api("admin", "GET", f"/api/watches/{watch_id}")).status_code == 404
    scoped = await api("integ-site", "POST", "/api/watches", json={"filter": "lianfang/#"})
    assert scoped.status_code == 403
    assert (await api("pm", "POST", "/api/watches", json={"filter": "x"})).status_code == 403
    assert (await api("pm", "GET", "/api/profiles")).status_code == 403
    bad = await api("admin", "POST", "/api/watches", json={"filter": "a/#/b"})
    assert bad.status_code == 422 and "stands alone" in bad.text
    too_long = await api("admin", "POST", "/api/watches", json={"filter": "a", "duration_s": 3600})
    assert too_long.status_code == 422
    listed = (await api("integ", "GET", "/api/watches")).json()
    assert [w["id"] for w in listed] == [watch_id] and "messages" not in listed[0]
    assert (await api("integ", "DELETE", f"/api/watches/{watch_id}")).status_code == 204
    assert (await api("integ", "GET", f"/api/watches/{watch_id}")).status_code == 404


async def test_a_quarantined_message_tested_with_a_profile(api: Any) -> None:
    profiles = (await api("integ", "GET", "/api/profiles")).json()
    lianfang = next(p for p in profiles if p["id"] == "lianfang")
    assert "lianfang/+/+/event" in lianfang["subscriptions"]
    # a door not registered yet: quarantined as an unknown device
    await asyncio.to_thread(publish, api.port, [(topic("door-new"), event_payload(1, "door-new"))])
    gw = api.gateway

    async def stored() -> int | None:
        with gw.engine.connect() as conn:
            return conn.execute(select(func.max(tables.quarantine.c.id))).scalar()

    record = await until(stored)
    r = await api("integ", "POST", f"/api/quarantine/{record}/trial", json={})
    assert r.status_code == 200, r.text
    assert r.json() | {"profile": "lianfang", "reason": "unknown_device"} == r.json()
    assert r.json()["topic"] == topic("door-new") and r.json()["truncated"] is False
    # registered since: the same bytes make their event now (nothing is stored by trying)
    put = await api("admin", "PUT", "/api/devices/door-new", json={"site": SITE, "kind": "access"})
    assert put.status_code == 201, put.text
    now = (await api("integ", "POST", f"/api/quarantine/{record}/trial")).json()
    assert now["ok"] and [e["type"] for e in now["events"]] == ["access_granted"]
    # another profile, by name: it does not read this payload
    other = await api("integ", "POST", f"/api/quarantine/{record}/trial",
                      json={"profile": "hikvision-acs"})  # fmt: skip
    assert other.status_code == 200 and other.json()["profile"] == "hikvision-acs"
    assert not other.json()["ok"]
    missing = await api("integ", "POST", f"/api/quarantine/{record}/trial", json={"profile": "x"})
    assert missing.status_code == 404
    with gw.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.events)).scalar() == 0
