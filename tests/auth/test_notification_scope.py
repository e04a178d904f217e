"""The live console push (/api/notifications/stream and /api/notifications/ws) is scoped:
each viewer receives only items about incidents it may see (or notifications addressed to
itself); ``recipient=`` narrows, never widens. Real accounts and tokens (tests/auth/conftest),
the runtime's own hub and dispatcher, with the console channel delivering for real."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.auth.guards import LivePush
from gateway.auth.principal import EVERYTHING, Scope
from gateway.auth.roles import AccountRole
from gateway.auth.service import CLI
from gateway.incidents.categories import IncidentCategory, Severity, Source
from gateway.incidents.service import Report
from gateway.notify.base import IncidentPlace
from gateway.notify.console import ConsoleNotifier
from tests.auth.conftest import World, make_world
from tests.incidents.helpers import panic_signal
from tests.test_api_live import AsgiConnection, SseReader, data_of

SENTINEL = "sentinel"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    """The auth world with the console channel delivering to the hub (as in the gateway)."""
    async for w in make_world(tmp_path):
        await w.rt.dispatcher.drain()  # the set-up incidents' notifications are out
        w.rt.dispatcher.notifiers["console"] = ConsoleNotifier(w.rt.hub)
        yield w


class Viewer:
    """One subscribed console (SSE or WebSocket) of one account."""

    def __init__(self, w: World, user: str, kind: str, params: dict[str, Any]) -> None:
        headers = w.as_(user)
        if kind == "sse":
            self.conn = AsgiConnection(w.app, "http", "/api/notifications/stream", params, headers)
            self.sse: SseReader | None = SseReader(self.conn)
        else:
            self.conn = AsgiConnection(w.app, "websocket", "/api/notifications/ws", params, headers)
            self.sse = None

    async def subscribed(self) -> None:
        if self.sse is not None:
            assert ": subscribed" in await self.sse.block()
            assert self.sse.status == 200
            return
        assert (await self.conn.next_message())["type"] == "websocket.accept"
        assert json.loads((await self.conn.next_message())["text"]) == {"type": "subscribed"}

    async def item(self) -> dict[str, Any]:
        if self.sse is not None:
            block = await self.sse.until(lambda b: "data: " in b)
            return data_of(block)
        message = await self.conn.next_message()
        assert message["type"] == "websocket.send", message
        result: dict[str, Any] = json.loads(message["text"])
        return result

    async def until_sentinel(self) -> list[dict[str, Any]]:
        """Every item before the sentinel (the hub's queue is first in, first out)."""
        items = []
        while (item := await self.item()).get("type") != SENTINEL:
            items.append(item)
        return items

    async def nothing_more(self) -> None:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(self.item(), 0.3)

    async def close(self) -> None:
        await self.conn.disconnect()


async def report(w: World, reporter: str, cell: str) -> int:
    return await w.rt.service.report(
        Report(
            source=Source.MANUAL,
            category=IncidentCategory.OTHER,
            severity=Severity.P3,
            title_zh="测试推送",
            site="demo-compound",
            cell=cell,
            reporter=reporter,
        )
    )


async def settle(w: World) -> None:
    await w.rt.dispatcher.drain()


def sentinel(w: World, place: IncidentPlace) -> None:
    w.rt.hub.publish({"type": SENTINEL}, place=place)


def about(items: list[dict[str, Any]], incident_id: int) -> list[dict[str, Any]]:
    return [i for i in items if i.get("incident_id") == incident_id]


def to(item: dict[str, Any]) -> str:
    """A notification's recipient: ``recipient_key`` (``kind/id``), which must agree with
    the payload's ``recipient`` object ({kind, id, name})."""
    r = item["recipient"]
    assert isinstance(r, dict) and {"kind", "id", "name"} <= r.keys(), item
    key = str(item["recipient_key"])
    assert key == f"{r['kind']}/{r['id']}", item
    return key


def types(items: list[dict[str, Any]]) -> set[str]:
    return {str(i["type"]) for i in items}


CELL_A = IncidentPlace("shifan-01", "demo-compound", None)


@pytest.mark.parametrize("kind", ["sse", "ws"])
async def test_grid_worker_gets_own_cell_only(world: World, kind: str) -> None:
    v = Viewer(world, "w1", kind, {})
    await v.subscribed()
    other = await report(world, "someone", "shifan-02")  # cell B first
    own = await report(world, "someone", "shifan-01")
    await settle(world)
    sentinel(world, CELL_A)
    items = await v.until_sentinel()
    assert about(items, other) == []
    mine = about(items, own)
    assert {"incident", "notification", "delivery"} <= types(mine)
    told = {to(i) for i in mine if i["type"] == "notification"}
    assert "person/p-worker-1" in told  # the cell's grid workers are notified
    assert not any("p-worker-3" in json.dumps(i) for i in items)  # cell B's worker
    assert {i["incident_id"] for i in items} == {own}
    await v.close()


@pytest.mark.parametrize("kind", ["sse", "ws"])
async def test_resident_gets_only_own_reports(world: World, kind: str) -> None:
    v = Viewer(world, "res1", kind, {})
    await v.subscribed()
    neighbour = await report(world, "someone", "shifan-01")  # same cell, someone else's
    own = await report(world, "res1", "shifan-01")
    answer = await world.client.post(
        f"/api/incidents/{own}/actions",
        json={"action": "comment", "note": "收到"},
        headers=world.as_("w1"),
    )
    assert answer.status_code == 200, answer.text
    await settle(world)
    sentinel(world, IncidentPlace(reporter="res1"))
    items = await v.until_sentinel()
    assert about(items, neighbour) == []
    assert {i["incident_id"] for i in items} == {own}
    assert [i["created"] for i in items if i["type"] == "incident"] == [True, False]
    await v.close()


@pytest.mark.parametrize("kind", ["sse", "ws"])
async def test_police_desk_gets_the_panics_of_its_beat(world: World, kind: str) -> None:
    v = Viewer(world, "desk1", kind, {})
    await v.subscribed()
    await world.rt.emit(panic_signal("panic-6-102", "6-1-102"))  # building 6: beat 2
    await world.rt.emit(panic_signal("panic-1-101", "1-1-101"))  # building 1: beat 1
    await settle(world)
    sentinel(world, CELL_A)
    items = await v.until_sentinel()
    assert len({i["incident_id"] for i in items}) == 1
    assert [i["created"] for i in items if i["type"] == "incident"] == [True]
    told = {to(i) for i in items if i["type"] == "notification"}
    assert "police-desk/beat-taiping-1" in told
    assert not any("beat-taiping-2" in json.dumps(i, ensure_ascii=False) for i in items)
    assert all(i.get("household") in (None, "1-1-101") for i in items)
    await v.close()


@pytest.mark.parametrize("kind", ["sse", "ws"])
async def test_recipient_elsewhere_gives_nothing_extra(world: World, kind: str) -> None:
    """Asking for cell B's grid worker (or another beat's desk) widens nothing."""
    worker = Viewer(world, "w1", kind, {"recipient": "person/p-worker-3"})
    desk = Viewer(world, "desk1", kind, {"recipient": ["police-desk/beat-taiping-2"]})
    await worker.subscribed()
    await desk.subscribed()
    await report(world, "someone", "shifan-02")
    await report(world, "someone", "shifan-01")
    await world.rt.emit(panic_signal("panic-6-102", "6-1-102"))
    await settle(world)
    await worker.nothing_more()
    await desk.nothing_more()
    await worker.close()
    await desk.close()


@pytest.mark.parametrize("kind", ["sse", "ws"])
async def test_recipient_narrows_within_the_scope(world: World, kind: str) -> None:
    v = Viewer(world, "w1", kind, {"recipient": "person/p-worker-1"})
    await v.subscribed()
    await report(world, "someone", "shifan-02")
    own = await report(world, "someone", "shifan-01")
    await settle(world)
    world.rt.hub.publish({"type": SENTINEL}, "person/p-worker-1", CELL_A)
    items = await v.until_sentinel()
    assert items and {i["type"] for i in items} == {"notification"}
    assert {(i["incident_id"], to(i)) for i in items} == {(own, "person/p-worker-1")}
    await v.close()


async def test_command_centre_sees_everything(world: World) -> None:
    v = Viewer(world, "cmd", "sse", {})
    await v.subscribed()
    a = await report(world, "someone", "shifan-01")
    b = await report(world, "someone", "shifan-02")
    await settle(world)
    sentinel(world, CELL_A)
    items = await v.until_sentinel()
    assert {i["incident_id"] for i in items} == {a, b}
    await v.close()


async def test_notification_addressed_to_the_viewer_reaches_it(world: World) -> None:
    """A grid worker of building 6 dispatched to a cell-1 incident gets that notification
    (it is theirs), but not the incident's other updates."""
    user = world.auth.create_user("pw4", None, AccountRole.GRID_WORKER, CLI, person_id="p-worker-4")
    world.tokens["pw4"], _ = world.auth.create_token(user["id"], "push", CLI)
    v = Viewer(world, "pw4", "sse", {})
    await v.subscribed()
    incident = await report(world, "someone", "shifan-01")
    answer = await world.client.post(
        f"/api/incidents/{incident}/actions",
        json={"action": "dispatch", "assignees": ["p-worker-4"]},
        headers=world.as_("cmd"),
    )
    assert answer.status_code == 200, answer.text
    await settle(world)
    sentinel(world, IncidentPlace("shifan-02-b6", "demo-compound", None))
    items = await v.until_sentinel()
    assert items and all(i["type"] == "notification" for i in items)
    assert {(i["incident_id"], to(i), i["occasion"]) for i in items} == {
        (incident, "person/p-worker-4", "dispatch")
    }
    await v.close()


async def test_without_incidents_read_no_subscription(world: World) -> None:
    answer = await world.client.get("/api/notifications/stream", headers=world.as_("integ"))
    assert answer.status_code == 403
    conn = AsgiConnection(world.app, "websocket", "/api/notifications/ws", {}, world.as_("integ"))
    message = await conn.next_message()  # refused before the handshake: a plain 403
    assert message["type"] == "websocket.http.response.start"
    assert message["status"] == 403
    await conn.disconnect()


def test_live_push_rules() -> None:
    cell = Scope(cells=frozenset({"c1"}))
    a, b = IncidentPlace("c1", "s", None), IncidentPlace("c2", "s", "r")
    worker = LivePush(cell, frozenset({"person/p1"}))
    assert worker.admits(a, None) and worker.admits(a, "person/p9")
    assert not worker.admits(b, None) and not worker.admits(b, "person/p9")
    assert worker.admits(b, "person/p1")  # addressed to them
    assert not worker.admits(None, None)  # no known incident: unrestricted viewers only
    narrowed = LivePush(cell, frozenset({"person/p1"}), frozenset({"person/p9"}))
    assert narrowed.admits(a, "person/p9")
    assert not narrowed.admits(a, None) and not narrowed.admits(b, "person/p9")
    assert not narrowed.admits(b, "person/p1")  # narrowed away, even their own
    resident = LivePush(Scope(reporter="r"))
    assert resident.admits(b, None) and not resident.admits(a, None)
    everything = LivePush(EVERYTHING)
    assert everything.admits(None, None) and everything.admits(b, "x/y")
