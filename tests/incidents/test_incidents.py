"""Incidents from signals and reports: grouping, outbox before send, parallel panic
notification, escalation on a virtual clock (surviving a restart), cancel, the API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from gateway.api.app import create_app
from gateway.bus import EventBus
from gateway.health import HealthReport
from gateway.incidents.runtime import IncidentsRuntime
from gateway.incidents.tables import incidents
from gateway.notify.base import Message, SendResult
from gateway.notify.tables import notifications
from tests.incidents.helpers import FakeClock, Recorder, door_signal, panic_signal, runtime
from tests.support.auth import trusted
from tests.support.incidents_app import ROUTERS, with_incidents

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[IncidentsRuntime]:
    clock = FakeClock()
    r = runtime(tmp_path, clock)
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


def mqtt(r: IncidentsRuntime) -> Recorder:
    return r.dispatcher.notifiers["mqtt"]  # type: ignore[return-value]


async def detail(r: IncidentsRuntime, incident_id: int) -> dict[str, Any]:
    from gateway.incidents.queries import get_incident

    found = await r.service.run_db(get_incident, r.engine, incident_id)
    assert found is not None
    return found


async def test_panic_reaches_desk_worker_community_and_neighbours_at_once(
    rt: IncidentsRuntime,
) -> None:
    await rt.emit(panic_signal())
    await rt.dispatcher.drain()
    got = {m.recipient for m in mqtt(rt).messages}
    assert got == {
        "police-desk/beat-taiping-2",
        "person/p-worker-4",
        "community/shifan",
        "neighbour-group/ng-3",
    }
    msg = mqtt(rt).to("police-desk/beat-taiping-2")[0]
    assert msg.payload["severity"] == "P1"
    assert msg.payload["address"] == "示范路88号6号楼1单元102室"
    assert msg.payload["event_ids"] == ["lianfang:panic-6-102:1"]
    assert msg.payload["ack_required"] is True
    inc = await detail(rt, msg.incident_id)
    assert inc["stage"] == "discovered" and inc["cell"] == "shifan-02-b6"
    assert {d["status"] for d in inc["deliveries"]} == {"sent"}
    assert [e["action"] for e in inc["timeline"]] == ["open", "notify"]


async def test_one_slow_receiver_does_not_delay_the_others(tmp_path: Path) -> None:
    slow, fast = Recorder(delay_s=0.5), Recorder()
    r = runtime(tmp_path, FakeClock(), {"mqtt": fast, "console": slow, "sms": fast, "voice": fast})
    await r.start()
    try:
        await r.emit(panic_signal())
        for _ in range(100):
            if len(fast.to("police-desk/beat-taiping-2")) and len(fast.to("community/shifan")):
                break
            await asyncio.sleep(0.01)
        assert fast.to("police-desk/beat-taiping-2"), "fast receivers waited for the slow one"
        assert slow.messages == []  # still sleeping
    finally:
        await r.stop()


async def test_outbox_row_is_committed_before_the_send(tmp_path: Path) -> None:
    seen: list[int] = []

    class Checking(Recorder):
        async def send(self, message: Message) -> SendResult:
            with r.engine.connect() as conn:
                row = conn.execute(
                    select(notifications.c.status).where(
                        notifications.c.id == message.notification_id
                    )
                ).first()
            seen.append(0 if row is None else 1)
            return SendResult.sent()

    checking = Checking()
    r = runtime(
        tmp_path,
        FakeClock(),
        {"mqtt": checking, "console": Recorder(), "sms": Recorder(), "voice": Recorder()},
    )
    await r.start()
    try:
        await r.emit(panic_signal())
        await r.dispatcher.drain()
    finally:
        await r.stop()
    assert seen and all(seen)


async def test_signals_with_the_same_group_key_attach_to_the_open_incident(
    rt: IncidentsRuntime,
) -> None:
    await rt.emit(door_signal(1))
    await rt.emit(door_signal(2))
    await rt.emit(door_signal(3, device="door-b1u1"))
    with rt.engine.connect() as conn:
        rows = conn.execute(
            select(incidents.c.group_key, incidents.c.signal_count, incidents.c.event_ids).order_by(
                incidents.c.id
            )
        ).all()
    assert [(r.group_key, r.signal_count) for r in rows] == [
        ("device_id=door-b2u1,door=-", 2),
        ("device_id=door-b1u1,door=-", 1),
    ]
    assert rows[0].event_ids == ["e1", "e2"]
    # redelivery of a signal already stored is ignored
    await rt.emit(door_signal(1))
    assert rt.service.stats.ignored == 1


async def test_a_closed_incident_is_not_reused(rt: IncidentsRuntime) -> None:
    from gateway.incidents.lifecycle import Action
    from gateway.incidents.service import ActionInput

    await rt.emit(door_signal(1))
    await rt.service.act(1, ActionInput(Action.FALSE_ALARM, "p-property", "property_manager"))
    await rt.emit(door_signal(2))
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(incidents)).scalar_one() == 2


async def test_grouped_signal_renotifies_only_after_repeat_interval(rt: IncidentsRuntime) -> None:
    clock: FakeClock = rt.clock  # type: ignore[assignment]
    await rt.emit(panic_signal(n=1))
    await rt.emit(panic_signal(n=2))  # same button, same open incident, within 1m
    await rt.dispatcher.drain()
    assert len(mqtt(rt).to("police-desk/beat-taiping-2")) == 1
    clock.advance(61)
    await rt.emit(panic_signal(n=3))
    await rt.dispatcher.drain()
    desk = mqtt(rt).to("police-desk/beat-taiping-2")
    assert [m.payload["occasion"] for m in desk] == ["new", "reminder"]


async def test_unacknowledged_responders_escalate_up_the_ladder(rt: IncidentsRuntime) -> None:
    """Nobody with a deadline acknowledges (the neighbours' "seen" does not count): at the
    P1 deadline the grid worker's goes to the grid head, the desk's and the community's to
    the command centre. Then the grid head acknowledges its escalation: the incident is
    taken and nothing escalates any more."""
    clock: FakeClock = rt.clock  # type: ignore[assignment]
    await rt.emit(panic_signal())
    await rt.dispatcher.drain()
    neighbours = mqtt(rt).to("neighbour-group/ng-3")[0]
    await rt.service.acknowledge(neighbours.notification_id, "p-neighbour")
    clock.advance(59)
    await rt.dispatcher.tick()
    await rt.dispatcher.drain()
    assert not mqtt(rt).to("person/p-head-2")
    clock.advance(2)  # P1 deadline: 60 s
    await rt.dispatcher.tick()
    await rt.dispatcher.drain()
    head = mqtt(rt).to("person/p-head-2")
    assert [m.payload["occasion"] for m in head] == ["escalation"]
    assert mqtt(rt).to("command-centre/taiping")
    inc = await detail(rt, head[0].incident_id)
    escalations = [e for e in inc["timeline"] if e["action"] == "escalate"]
    assert sorted(e["data"]["from"] for e in escalations) == [
        "community",
        "grid_worker",
        "police_desk",
    ]
    assert all("did not acknowledge" in e["note"] for e in escalations)
    assert inc["acked_at"] is None
    await rt.service.acknowledge(head[0].notification_id, "p-head-2")
    clock.advance(61)  # the head's and the command centre's deadlines: settled
    await rt.dispatcher.tick()
    await rt.dispatcher.drain()
    inc = await detail(rt, head[0].incident_id)
    assert [e["action"] for e in inc["timeline"]].count("escalate") == 3
    assert inc["acked_at"] is not None and inc["acked_by"] == "p-head-2"


async def test_a_neighbours_acknowledgement_does_not_count_as_the_incidents(
    rt: IncidentsRuntime,
) -> None:
    """Neighbours are told, not asked: their "seen" goes on the timeline, but the incident is
    acknowledged (time to acknowledge in the figures) only by a responder with a deadline."""
    await rt.emit(panic_signal())
    await rt.dispatcher.drain()
    neighbours = mqtt(rt).to("neighbour-group/ng-3")[0]
    desk = mqtt(rt).to("police-desk/beat-taiping-2")[0]
    await rt.service.acknowledge(neighbours.notification_id, "p-neighbour")
    inc = await detail(rt, desk.incident_id)
    assert inc["acked_at"] is None
    assert [e["action"] for e in inc["timeline"]].count("acknowledge") == 1
    await rt.service.acknowledge(desk.notification_id, "p-desk")
    assert (await detail(rt, desk.incident_id))["acked_at"] is not None


async def test_ack_deadlines_survive_a_restart(tmp_path: Path) -> None:
    clock = FakeClock()
    first = runtime(tmp_path, clock)
    await first.start()
    await first.emit(panic_signal())
    await first.dispatcher.drain()
    await first.stop()
    clock.advance(120)
    again = IncidentsRuntime(
        first.engine,
        EventBus(),
        first.registry,
        config_dir=first.config_dir,
        data_dir=tmp_path,
        mqtt=None,
        clock=clock,
        notifiers={c: Recorder() for c in ("mqtt", "console", "sms", "voice")},
        tick_s=3600,
    )  # type: ignore[dict-item]
    await again.start()
    try:
        await again.dispatcher.tick()
        await again.dispatcher.drain()
        told = {m.recipient for m in mqtt(again).messages}
        assert "person/p-head-2" in told  # the grid worker's deadline fired after restart
        assert "command-centre/taiping" in told  # the desk's and community's deadlines too
    finally:
        await again.stop()


async def test_unsent_notifications_are_sent_after_a_restart(tmp_path: Path) -> None:
    clock = FakeClock()
    down = Recorder(results=[SendResult.retry("broker away")] * 20)
    first = runtime(
        tmp_path,
        clock,
        {"mqtt": down, "console": Recorder(), "sms": Recorder(), "voice": Recorder()},
    )
    await first.start()
    await first.emit(door_signal(1))  # access: property, group_wait 30 s (root)
    await first.stop()
    assert down.messages == []  # not due yet
    clock.advance(31)
    second = runtime(tmp_path, clock)
    await second.start()
    try:
        await second.dispatcher.tick()
        await second.dispatcher.drain()
        assert [m.recipient for m in mqtt(second).messages] == ["person/p-property"]
    finally:
        await second.stop()


async def test_cancelled_panic_downgrades_and_stops_escalation(rt: IncidentsRuntime) -> None:
    clock: FakeClock = rt.clock  # type: ignore[assignment]
    await rt.emit(panic_signal())
    await rt.dispatcher.drain()
    from rules.model import Severity

    await rt.emit(panic_signal(kind="update", state="cancelled", severity=Severity.P3))
    await rt.dispatcher.drain()
    desk = mqtt(rt).to("police-desk/beat-taiping-2")
    assert [m.payload["occasion"] for m in desk] == ["new", "cancel"]
    clock.advance(120)
    await rt.dispatcher.tick()
    await rt.dispatcher.drain()
    assert not mqtt(rt).to("person/p-head-2")
    inc = await detail(rt, desk[0].incident_id)
    assert inc["severity"] == "P3" and inc["signal_state"] == "cancelled"
    assert inc["stage"] == "discovered"  # people decide: no automatic stage change


async def test_retry_then_dead_letter(tmp_path: Path) -> None:
    from gateway.notify.policy import RetryPolicy

    clock = FakeClock()
    failing = Recorder(results=[SendResult.retry("503")] * 100)
    r = runtime(
        tmp_path,
        clock,
        {"mqtt": failing, "console": Recorder(), "sms": Recorder(), "voice": Recorder()},
    )
    await r.start()
    r.dispatcher.policies["mqtt"] = RetryPolicy(max_attempts=3, base_s=1, max_s=10)
    try:
        await r.emit(panic_signal())
        await r.dispatcher.drain()
        for _ in range(5):
            clock.advance(30)
            await r.dispatcher.tick()
            await r.dispatcher.drain()
        inc = await detail(r, 1)
        mq = [d for d in inc["deliveries"] if d["channel"] == "mqtt" and d["occasion"] == "new"]
        assert {d["status"] for d in mq} == {"dead"}
        assert {d["attempts"] for d in mq} == {3}
        assert all(d["last_error"] == "503" for d in mq)
    finally:
        await r.stop()


# -- API --------------------------------------------------------------------------------


class _Stub:
    def __init__(self, r: IncidentsRuntime) -> None:
        self.engine = r.engine
        self.bus = r.bus

    def health(self) -> HealthReport:
        return HealthReport()


@pytest.fixture
async def client(rt: IncidentsRuntime) -> AsyncIterator[httpx.AsyncClient]:
    app = with_incidents(trusted(create_app(_Stub(rt), extra_routers=ROUTERS)), rt)  # type: ignore[arg-type]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def test_api_workflow_with_409_attachments_and_ack(
    rt: IncidentsRuntime, client: httpx.AsyncClient
) -> None:
    r = await client.post(
        "/api/hazard-reports",
        json={
            "text": "3号楼楼道堆放杂物，堵塞消防通道",
            "location": {"address": "3号楼1单元"},
            "site": "demo-compound",
            "cell": "shifan-01",
            "reporter": "p-resident",
        },
    )
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    r = await client.post(f"/api/incidents/{iid}/actions", json={"action": "verify"})
    assert r.status_code == 409
    assert "cannot verify" in r.json()["detail"] and "dispatch" in r.json()["allowed"]
    up = await client.post(
        f"/api/incidents/{iid}/attachments?filename=../../x.png&actor=p-resident",
        content=PNG,
        headers={"Content-Type": "image/png"},
    )
    assert up.status_code == 201, up.text
    assert up.json()["filename"] == "x.png" and up.json()["content_type"] == "image/png"
    bad = await client.post(f"/api/incidents/{iid}/attachments", content=b"<html>hi</html>")
    assert bad.status_code == 415
    big = await client.post(
        f"/api/incidents/{iid}/attachments", content=b"\xff\xd8\xff" + b"0" * (10 * 1024 * 1024)
    )
    assert big.status_code == 413
    for body in (
        {
            "action": "dispatch",
            "actor": "p-command",
            "role": "command_operator",
            "assignees": ["p-worker-1"],
        },
        {"action": "accept", "actor": "p-worker-1", "role": "grid_worker"},
        {
            "action": "feedback",
            "actor": "p-worker-1",
            "role": "grid_worker",
            "note": "已清理",
            "attachments": [up.json()["id"]],
        },
        {"action": "verify", "actor": "p-worker-2", "role": "grid_worker"},
        {"action": "evaluate", "actor": "p-leader", "score": 5, "note": "及时"},
    ):
        r = await client.post(f"/api/incidents/{iid}/actions", json=body)
        assert r.status_code == 200, r.text
    assert r.json()["stage"] == "evaluated"
    d = (await client.get(f"/api/incidents/{iid}")).json()
    assert [e["action"] for e in d["timeline"]] == [
        "open",
        "notify",
        "attach",
        "dispatch",
        "notify",
        "accept",
        "feedback",
        "verify",
        "evaluate",
    ]
    assert d["score"] == 5 and d["closed_at"] is not None
    assert any(
        x["occasion"] == "dispatch" and x["recipient_id"] == "p-worker-1" for x in d["deliveries"]
    )
    got = await client.get(f"/api/incidents/{iid}/attachments/{up.json()['id']}")
    assert got.status_code == 200 and got.content == PNG
    nid = d["deliveries"][0]["id"]
    assert (
        await client.post(f"/api/notifications/{nid}/ack", json={"actor": "p-worker-1"})
    ).status_code == 200
    again = await client.post(f"/api/notifications/{nid}/ack", json={"actor": "p-worker-1"})
    assert again.status_code == 200  # a repeated click is harmless and recorded once
    timeline = (await client.get(f"/api/incidents/{iid}")).json()["timeline"]
    assert [t["action"] for t in timeline].count("acknowledge") == 1
    assert (await client.post("/api/notifications/999999/ack", json={})).status_code == 404
    page = (await client.get("/api/incidents?stage=evaluated&source=hazard")).json()
    assert [i["id"] for i in page["items"]] == [iid]
    assert (await client.get("/api/incidents?stage=bogus")).status_code == 422


async def test_api_manual_report_listing_and_grid_admin(
    rt: IncidentsRuntime, client: httpx.AsyncClient
) -> None:
    for n in range(3):
        r = await client.post(
            "/api/incidents",
            json={
                "category": "dispute",
                "title_zh": f"邻里纠纷{n}",
                "cell": "shifan-02",
                "actor": "p-worker-3",
            },
        )
        assert r.status_code == 201
    first = (await client.get("/api/incidents?limit=2")).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = (await client.get(f"/api/incidents?limit=2&cursor={first['next_cursor']}")).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    people = (await client.get("/api/grid/people?role=grid_worker")).json()
    assert {p["id"] for p in people} == {"p-worker-1", "p-worker-2", "p-worker-3", "p-worker-4"}
    assert all("phone_ref" not in p and p["phone_masked"].startswith("*") for p in people)
    bad = await client.put(
        "/api/grid/people/p-new",
        json={
            "id": "p-new",
            "name": "新网格员",
            "roles": ["grid_worker"],
            "cells": ["no-such-cell"],
        },
    )
    assert bad.status_code == 422 and "no-such-cell" in bad.text
    ok = await client.put(
        "/api/grid/people/p-new",
        json={
            "id": "p-new",
            "name": "新网格员",
            "phone": "13811112222",
            "roles": ["grid_worker"],
            "cells": ["shifan-02-b6"],
        },
    )
    assert ok.status_code == 200
    assert [
        p.id
        for p in rt.grid.people_in_cell(
            __import__("gateway.grid.model", fromlist=["Role"]).Role.GRID_WORKER, "shifan-02-b6"
        )
    ] == ["p-new", "p-worker-4"]
    groups = (await client.get("/api/grid/neighbour-groups")).json()
    assert [len(g["households"]) for g in groups] == [10, 10, 10]
    home = next(
        h for h in (await client.get("/api/grid/households")).json() if h["id"] == "6-1-102"
    )
    moved = {k: home[k] for k in ("id", "site", "place", "group") if home.get(k)}
    wrong = await client.put("/api/grid/households/6-1-102", json={**moved, "group": "no-group"})
    assert wrong.status_code == 422 and "no-group" in wrong.text
    other_id = await client.put("/api/grid/households/6-1-999", json=moved)
    assert other_id.status_code == 422 and "differ" in other_id.text
    saved = await client.put("/api/grid/households/6-1-102", json={**moved, "address": "6号楼"})
    assert saved.json() == {"id": "6-1-102", "saved": True}
    assert (await client.delete("/api/grid/households/6-1-102")).json()["deleted"] is True
    assert (await client.delete("/api/grid/households/6-1-102")).status_code == 404
    assert (await client.delete("/api/grid/people/p-new")).json() == {
        "id": "p-new",
        "deleted": True,
    }
    assert "p-new" not in {p.id for p in rt.grid.people.values()}
    summary = (await client.get("/api/stats/summary?period=month&day=2026-05-12")).json()
    assert summary["total"] == 3 and summary["by_category"] == {"dispute": 3}
