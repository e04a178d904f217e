"""An acknowledged incident is not escalated (issue 18): taken by a responder with authority
(确认接警 on the incident, or a recipient asked to acknowledge, over HTTP or MQTT), every
deadline is settled and those already told hear that it is taken; a repeat is a no-op that
says so; recipients' own acknowledgements are still recorded.

The P1 deadline is one second here (a short deadline on the virtual clock)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.api.app import create_app
from gateway.api.deps import get_current_principal
from gateway.auth.principal import ALL, EVERYTHING, Principal
from gateway.health import HealthReport
from gateway.incidents.categories import Severity
from gateway.incidents.lifecycle import Action
from gateway.incidents.queries import get_incident
from gateway.incidents.runtime import IncidentsRuntime
from gateway.incidents.service import AckOutcome, ActionInput
from tests.incidents.helpers import FakeClock, Recorder, door_signal, panic_signal, runtime
from tests.support.incidents_app import ROUTERS, with_incidents

DESK = "police-desk/beat-taiping-2"
WORKER = "person/p-worker-4"
HEAD = "person/p-head-2"
COMMUNITY = "community/shifan"
NEIGHBOURS = "neighbour-group/ng-3"
CENTRE = "command-centre/taiping"
DEADLINE_S = 1.0


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[IncidentsRuntime]:
    r = runtime(tmp_path, FakeClock())
    await r.start()
    escalation = r.routing.escalation
    short = {**escalation.ack_deadline, Severity.P1: DEADLINE_S}
    r.service.routing = r.routing.model_copy(
        update={"escalation": escalation.model_copy(update={"ack_deadline": short})}
    )
    try:
        yield r
    finally:
        await r.stop()


def mqtt(r: IncidentsRuntime) -> Recorder:
    return r.dispatcher.notifiers["mqtt"]  # type: ignore[return-value]


async def advance(r: IncidentsRuntime, seconds: float) -> None:
    r.clock.advance(seconds)  # type: ignore[attr-defined]
    await r.dispatcher.tick()
    await r.dispatcher.drain()


async def detail(r: IncidentsRuntime, incident_id: int) -> dict[str, Any]:
    found = await r.service.run_db(get_incident, r.engine, incident_id)
    assert found is not None
    return found


async def panic(r: IncidentsRuntime) -> int:
    await r.emit(panic_signal())
    await r.dispatcher.drain()
    return mqtt(r).to(DESK)[0].incident_id


def occasions(r: IncidentsRuntime, recipient: str) -> list[str]:
    return [m.payload["occasion"] for m in mqtt(r).to(recipient)]


async def assert_never_escalated(r: IncidentsRuntime, incident_id: int) -> None:
    for _ in range(5):  # well past every rung's deadline
        await advance(r, 10 * DEADLINE_S)
    inc = await detail(r, incident_id)
    assert [e for e in inc["timeline"] if e["action"] == "escalate"] == []
    assert not any("did not acknowledge" in e["note"] for e in inc["timeline"])
    assert not mqtt(r).to(HEAD) and not mqtt(r).to(CENTRE)
    assert all(not d["ack_required"] or d["acked_at"] for d in inc["deliveries"])


async def test_without_an_acknowledgement_the_short_deadline_escalates(
    rt: IncidentsRuntime,
) -> None:
    """The control: the same set-up escalates when nobody acknowledges."""
    incident_id = await panic(rt)
    await advance(rt, DEADLINE_S + 0.1)
    assert occasions(rt, HEAD) == ["escalation"]
    inc = await detail(rt, incident_id)
    notes = [e["note"] for e in inc["timeline"] if e["action"] == "escalate"]
    assert notes and all("did not acknowledge" in n for n in notes)


async def test_an_incident_acknowledged_on_the_incident_is_not_escalated(
    rt: IncidentsRuntime,
) -> None:
    incident_id = await panic(rt)
    await advance(rt, 0.9 * DEADLINE_S)
    taken = await rt.service.acknowledge_incident(
        incident_id, ActionInput(Action.ACKNOWLEDGE, "p-desk", "police_desk", "民警出发")
    )
    assert taken.outcome is AckOutcome.RECORDED and taken.acked_by == "p-desk"
    await rt.dispatcher.drain()
    # everyone already told hears it is taken, on the channels that reached them
    for told in (DESK, WORKER, COMMUNITY, NEIGHBOURS):
        assert occasions(rt, told) == ["new", "acknowledged"], told
    notice = mqtt(rt).to(WORKER)[1].payload
    assert notice["ack_required"] is False
    assert notice["acknowledged"]["by"] == "p-desk"
    await assert_never_escalated(rt, incident_id)
    inc = await detail(rt, incident_id)
    assert inc["acked_by"] == "p-desk" and inc["acked_at"] is not None
    acks = [e for e in inc["timeline"] if e["action"] == "acknowledge"]
    assert [(e["actor"], e["note"], e["data"]) for e in acks] == [
        ("p-desk", "民警出发", {"incident_acknowledged": True})
    ]


async def test_a_repeated_acknowledgement_records_nothing_and_says_by_whom(
    rt: IncidentsRuntime,
) -> None:
    incident_id = await panic(rt)
    first = await rt.service.acknowledge_incident(
        incident_id, ActionInput(Action.ACKNOWLEDGE, "p-desk", "police_desk")
    )
    await rt.dispatcher.drain()
    before = await detail(rt, incident_id)
    rt.clock.advance(0.5)  # type: ignore[attr-defined]
    again = await rt.service.acknowledge_incident(
        incident_id, ActionInput(Action.ACKNOWLEDGE, "p-worker-4", "grid_worker", "我也到了")
    )
    assert again.outcome is AckOutcome.DUPLICATE
    assert (again.acked_by, again.acked_at) == ("p-desk", first.acked_at)
    after = await detail(rt, incident_id)
    assert after["timeline"] == before["timeline"]
    assert after["deliveries"] == before["deliveries"]


async def test_a_responders_notification_acknowledgement_takes_the_incident(
    rt: IncidentsRuntime,
) -> None:
    incident_id = await panic(rt)
    desk = mqtt(rt).to(DESK)[0]
    result = await rt.service.acknowledge_notification(desk.notification_id, "p-desk")
    assert result.outcome is AckOutcome.RECORDED and result.took_incident
    await rt.dispatcher.drain()
    assert occasions(rt, DESK) == ["new"]  # the one who acknowledged is not told
    assert occasions(rt, WORKER) == ["new", "acknowledged"]
    await assert_never_escalated(rt, incident_id)
    # the worker's own acknowledgement still counts for the figures
    worker = mqtt(rt).to(WORKER)[0]
    mine = await rt.service.acknowledge_notification(worker.notification_id, "p-worker-4")
    assert mine.outcome is AckOutcome.RECORDED and not mine.took_incident
    inc = await detail(rt, incident_id)
    assert inc["acked_by"] == "p-desk"
    worker_rows = [d for d in inc["deliveries"] if d["recipient_id"] == "p-worker-4"]
    assert worker_rows and all(d["acked_by"] == "p-worker-4" for d in worker_rows)
    assert [e["actor"] for e in inc["timeline"] if e["action"] == "acknowledge"] == [
        "p-desk",
        "p-worker-4",
    ]


async def test_a_neighbours_acknowledgement_does_not_stop_the_ladder(
    rt: IncidentsRuntime,
) -> None:
    incident_id = await panic(rt)
    seen = await rt.service.acknowledge_notification(
        mqtt(rt).to(NEIGHBOURS)[0].notification_id, "p-neighbour"
    )
    assert seen.outcome is AckOutcome.RECORDED and not seen.took_incident
    await advance(rt, DEADLINE_S + 0.1)
    assert occasions(rt, HEAD) == ["escalation"]
    assert (await detail(rt, incident_id))["acked_at"] is None


async def test_acknowledged_over_mqtt_is_not_escalated(rt: IncidentsRuntime) -> None:
    """The MQTT notifier's ack handler, fed as the broker would (its topic, its payload)."""
    incident_id = await panic(rt)
    await rt.acks(f"lianfang/ack/{DESK}", json.dumps({"incident_id": incident_id}).encode())
    await rt.acks(f"lianfang/ack/{DESK}", json.dumps({"incident_id": incident_id}).encode())
    assert (rt.acks.stats.recorded, rt.acks.stats.duplicates) == (1, 1)
    await rt.dispatcher.drain()
    await assert_never_escalated(rt, incident_id)
    assert occasions(rt, WORKER) == ["new", "acknowledged"]
    assert (await detail(rt, incident_id))["acked_by"] == DESK


async def test_what_is_sent_after_acknowledgement_asks_no_acknowledgement(
    rt: IncidentsRuntime,
) -> None:
    """A grouped signal's reminder and a dispatch inform; they start no new deadline."""
    incident_id = await panic(rt)
    await rt.service.acknowledge_incident(
        incident_id, ActionInput(Action.ACKNOWLEDGE, "p-desk", "police_desk")
    )
    rt.clock.advance(120)  # past the panic route's repeat interval
    await rt.emit(panic_signal(n=2))
    await rt.service.act(
        incident_id,
        ActionInput(Action.DISPATCH, "p-desk", "police_desk", assignees=("p-worker-1",)),
    )
    await rt.dispatcher.drain()
    later = [m for m in mqtt(rt).messages if m.payload["occasion"] in ("reminder", "dispatch")]
    assert {m.payload["occasion"] for m in later} == {"reminder", "dispatch"}
    assert all(m.payload["ack_required"] is False for m in later)
    await assert_never_escalated(rt, incident_id)


async def test_a_p2_incident_acknowledged_before_its_notifications_are_due(
    rt: IncidentsRuntime,
) -> None:
    """A door alarm waits 30 s (group_wait) before the property manager is told; taken
    before that, the notification still goes out, asking nothing, and nothing escalates."""
    await rt.emit(door_signal(1))
    await rt.service.acknowledge_incident(
        1, ActionInput(Action.ACKNOWLEDGE, "p-command", "command_operator")
    )
    await advance(rt, 31)
    await advance(rt, 10 * 60)
    inc = await detail(rt, 1)
    assert [d["ack_required"] for d in inc["deliveries"]] == [False] * len(inc["deliveries"])
    assert not [e for e in inc["timeline"] if e["action"] == "escalate"]


# -- HTTP ------------------------------------------------------------------------------


class _Stub:
    def __init__(self, r: IncidentsRuntime) -> None:
        self.engine = r.engine
        self.bus = r.bus

    def health(self) -> HealthReport:
        return HealthReport()


def staff(person: str, role: str) -> Principal:
    return Principal(person, frozenset({ALL}), role=role, person_id=person, scope=EVERYTHING)


@pytest.fixture
async def http(rt: IncidentsRuntime) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    app = with_incidents(create_app(_Stub(rt), extra_routers=ROUTERS), rt)  # type: ignore[arg-type]

    def as_(principal: Principal) -> None:
        app.dependency_overrides[get_current_principal] = lambda: principal

    as_(staff("p-desk", "police_desk"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c, as_


async def test_the_api_acknowledges_once_and_then_answers_duplicate(
    rt: IncidentsRuntime, http: tuple[httpx.AsyncClient, Any]
) -> None:
    client, as_ = http
    incident_id = await panic(rt)
    shown = (await client.get(f"/api/incidents/{incident_id}")).json()
    assert "acknowledge" in shown["allowed"]

    r = await client.post(
        f"/api/incidents/{incident_id}/actions", json={"action": "acknowledge", "note": "出警"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["acknowledgement"]["outcome"] == "recorded"
    assert body["acknowledgement"]["acked_by"] == "p-desk"
    assert "acknowledge" not in body["allowed"] and "dispatch" in body["allowed"]
    shown = (await client.get(f"/api/incidents/{incident_id}")).json()
    assert "acknowledge" not in shown["allowed"]  # the console no longer offers the button

    as_(staff("p-worker-4", "grid_worker"))
    again = await client.post(
        f"/api/incidents/{incident_id}/actions", json={"action": "acknowledge"}
    )
    assert again.status_code == 200, again.text
    assert again.json()["acknowledgement"] == {**body["acknowledgement"], "outcome": "duplicate"}

    # a recipient's own acknowledgement after it is taken: recorded, then a duplicate
    worker_nid = mqtt(rt).to(WORKER)[0].notification_id
    first = (await client.post(f"/api/notifications/{worker_nid}/ack", json={})).json()
    second = (await client.post(f"/api/notifications/{worker_nid}/ack", json={})).json()
    assert (first["outcome"], first["took_incident"]) == ("recorded", False)
    assert second["outcome"] == "duplicate"

    await assert_never_escalated(rt, incident_id)
    inc = (await client.get(f"/api/incidents/{incident_id}")).json()
    assert [e["actor"] for e in inc["timeline"] if e["action"] == "acknowledge"] == [
        "p-desk",
        "p-worker-4",
    ]


async def test_a_notification_acknowledged_over_the_api_takes_the_incident(
    rt: IncidentsRuntime, http: tuple[httpx.AsyncClient, Any]
) -> None:
    client, _ = http
    incident_id = await panic(rt)
    nid = mqtt(rt).to(DESK)[0].notification_id
    r = await client.post(f"/api/notifications/{nid}/ack", json={})
    assert r.status_code == 200
    assert r.json() == {
        "id": nid,
        "acknowledged": True,
        "outcome": "recorded",
        "incident_id": incident_id,
        "took_incident": True,
    }
    await assert_never_escalated(rt, incident_id)
    shown = (await client.get(f"/api/incidents/{incident_id}")).json()
    assert "acknowledge" not in shown["allowed"]
