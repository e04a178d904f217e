"""The district's questions (/api/district/...) are scoped by the grid like the listings: the
police desk of beat taiping-1 (cell shifan-01) sees the demo compound's events only, the
shifan-01 grid worker its incidents only (grid workers do not read device events: no
``events:read``); a card number is hashed, never kept; a trace's cursor stays right while
rows are inserted between pages."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from gateway.audit.tables import audit_log
from gateway.privacy import pseudonymise
from gateway.storage.tables import events
from tests.auth.conftest import World

pytestmark = pytest.mark.asyncio(loop_scope="module")

DAY = datetime(2026, 5, 12, tzinfo=UTC)
PLATE = "浙A77777"
CARD = "0012345678"
SINCE = "2026-05-01T00:00:00Z"
UNTIL = "2026-06-01T00:00:00Z"


def _seed(w: World) -> None:
    """The same car and card in two compounds, an hour apart, a few times over."""
    ref = pseudonymise(CARD, "card")
    rows = []
    for n in range(6):
        at = DAY + timedelta(hours=n)
        for site, gate, door in (
            ("demo-compound", "d-own", "door-own"),
            ("far", "d-other", "door-far"),
        ):
            rows.append({
                "event_id": f"gate-{site}-{n}", "site": site, "device_id": gate, "kind": "gate",
                "type": "plate_read", "occurred_at": at, "received_at": at, "raw": "",
                "attributes": {"plate": PLATE, "direction": "in"},
            })  # fmt: skip
            rows.append({
                "event_id": f"door-{site}-{n}", "site": site, "device_id": door, "kind": "access",
                "type": "access_granted", "occurred_at": at, "received_at": at, "raw": "",
                "attributes": {"card_ref": ref, "card_masked": "****5678"},
            })  # fmt: skip
    with w.rt.engine.begin() as conn:
        conn.execute(insert(events), rows)


@pytest.fixture(scope="module")
def world(shared_world: World) -> World:
    _seed(shared_world)
    return shared_world


async def _get(w: World, user: str, path: str) -> dict[str, object]:
    r = await w.client.get(path, headers=w.as_(user))
    assert r.status_code == 200, r.text
    data: dict[str, object] = r.json()
    return data


def _sites(page: dict[str, object]) -> set[str]:
    return {str(e["site"]) for e in page["items"]}  # type: ignore[attr-defined,index]


async def test_plate_trace_is_scoped_by_grid(world: World) -> None:
    path = f"/api/district/traces/plate?plate={PLATE}&since={SINCE}&until={UNTIL}"
    everything = await _get(world, "cmd", path)
    own = await _get(world, "desk1", path)
    assert _sites(everything) == {"demo-compound", "far"}
    assert _sites(own) == {"demo-compound"} and len(own["items"]) == 6  # type: ignore[arg-type]
    asked = await _get(world, "desk1", path + "&site=far")  # asking for another compound
    assert asked["items"] == []
    # newest first; plates masked for roles without pii:read
    times = [e["occurred_at"] for e in own["items"]]  # type: ignore[attr-defined]
    assert times == sorted(times, reverse=True)
    assert {e["attributes"]["plate"] for e in own["items"]} == {PLATE}  # type: ignore[attr-defined]
    manager = await _get(world, "pm", path)  # the demo compound's manager: no pii:read
    assert _sites(manager) == {"demo-compound"}
    assert all(e["attributes"]["plate"] != PLATE for e in manager["items"])  # type: ignore[attr-defined]


async def test_person_trace_by_hash_or_number_is_scoped(world: World) -> None:
    ref = pseudonymise(CARD, "card")
    by_ref = await _get(
        world, "desk1", f"/api/district/traces/person?ref={ref}&since={SINCE}&until={UNTIL}"
    )
    r = await world.client.post(
        "/api/district/traces/person",
        json={"card": CARD, "since": SINCE, "until": UNTIL},
        headers=world.as_("desk1"),
    )
    assert r.status_code == 200, r.text
    assert r.json() == by_ref
    assert _sites(by_ref) == {"demo-compound"} and len(by_ref["items"]) == 6  # type: ignore[arg-type]
    everything = await _get(
        world, "cmd", f"/api/district/traces/person?ref={ref}&since={SINCE}&until={UNTIL}"
    )
    assert _sites(everything) == {"demo-compound", "far"}
    # the number itself is kept nowhere: not in the audit log of the POST
    with world.rt.engine.connect() as conn:
        logged = json.dumps(
            [dict(r._mapping) for r in conn.execute(select(audit_log))], default=str
        )
    assert "/api/district/traces/person" in logged and CARD not in logged
    bad = await world.client.get(
        "/api/district/traces/person?ref=" + CARD, headers=world.as_("cmd")
    )
    assert bad.status_code == 422  # a raw number is not a reference
    both = await world.client.post(
        "/api/district/traces/person", json={"card": CARD, "ref": ref}, headers=world.as_("cmd")
    )
    assert both.status_code == 422


async def test_device_day_is_scoped_by_grid(world: World) -> None:
    path = "/api/district/devices/{}/day?day=2026-05-12&tz=UTC"
    # six reads seeded here and one by the world itself (conftest), on each gate
    assert len((await _get(world, "desk1", path.format("d-own")))["items"]) == 7  # type: ignore[arg-type]
    assert (await _get(world, "desk1", path.format("d-other")))["items"] == []
    other = await _get(world, "cmd", path.format("d-other"))
    times = [e["occurred_at"] for e in other["items"]]  # type: ignore[attr-defined]
    assert len(times) == 7 and times == sorted(times)  # in order through the day
    # the local day: in Shanghai, 2026-05-12 ends at 16:00 UTC; all six are before it
    local = await _get(world, "cmd", path.format("d-other").replace("tz=UTC", "tz=Asia/Shanghai"))
    assert len(local["items"]) == 7  # type: ignore[arg-type]
    before = await _get(world, "cmd", "/api/district/devices/d-other/day?day=2026-05-11&tz=UTC")
    assert before["items"] == []


async def test_counts_are_scoped_by_grid(world: World) -> None:
    path = f"/api/district/counts?since={SINCE}&until={UNTIL}&tz=UTC"
    everything = await _get(world, "cmd", path)
    own = await _get(world, "desk1", path)
    totals = {i["site"]: i["by_kind"] for i in everything["items"]}  # type: ignore[attr-defined]
    assert totals["far"] == {"gate": 7, "access": 6}
    assert {i["site"] for i in own["items"]} == {"demo-compound"}  # type: ignore[attr-defined]
    asked = await _get(world, "desk1", path + "&site=far")
    assert asked["items"] == []
    days = await _get(world, "cmd", path + "&bucket=day&site=far")
    [far] = days["items"]  # type: ignore[misc]
    assert [(b["at"][:10], b["kind"], b["count"]) for b in far["buckets"]] == [
        ("2026-05-12", "access", 6),
        ("2026-05-12", "gate", 7),
    ]
    hours = await _get(world, "cmd", path + "&site=far")
    assert len(hours["items"][0]["buckets"]) == 12  # type: ignore[index]
    # a page of one compound at a time
    first = await _get(world, "cmd", path + "&limit=1")
    assert len(first["items"]) == 1 and first["next_cursor"]  # type: ignore[arg-type]


async def test_open_incidents_per_compound_are_scoped(world: World) -> None:
    everything = await _get(world, "cmd", "/api/district/incidents/open")
    own = await _get(world, "w1", "/api/district/incidents/open")
    head = await _get(world, "h2", "/api/district/incidents/open")
    by_site = {i["site"]: i["open"] for i in everything["items"]}  # type: ignore[attr-defined]
    assert by_site == {"demo-compound": 3, "far": 1}
    assert [(i["site"], i["open"]) for i in own["items"]] == [("demo-compound", 2)]  # type: ignore[attr-defined]
    assert [(i["site"], i["open"]) for i in head["items"]] == [("demo-compound", 1)]  # type: ignore[attr-defined]
    paged = await _get(world, "cmd", "/api/district/incidents/open?limit=1")
    assert len(paged["items"]) == 1 and paged["next_cursor"]  # type: ignore[arg-type]
    rest = await _get(world, "cmd", f"/api/district/incidents/open?cursor={paged['next_cursor']}")
    assert [i["site"] for i in rest["items"]] == ["far"]  # type: ignore[attr-defined]
    resident = await world.client.get(
        "/api/district/traces/plate?plate=X1", headers=world.as_("res1")
    )
    assert resident.status_code == 403


async def test_trace_pages_stay_right_while_rows_are_inserted(world: World) -> None:
    path = f"/api/district/traces/plate?plate={PLATE}&since={SINCE}&until={UNTIL}&limit=4"
    first = await _get(world, "cmd", path)
    seen = [e["event_id"] for e in first["items"]]  # type: ignore[attr-defined]
    # meanwhile: a newer read, an older one, and one at the very time of the page's last row
    last_at = datetime.fromisoformat(str(first["items"][-1]["occurred_at"]))  # type: ignore[index]
    extra = [("late-new", DAY + timedelta(hours=9)), ("late-old", DAY - timedelta(hours=1)),
             ("same-time", last_at)]  # fmt: skip
    with world.rt.engine.begin() as conn:
        conn.execute(
            insert(events),
            [{"event_id": e, "site": "far", "device_id": "d-other", "kind": "gate",
              "type": "plate_read", "occurred_at": at, "received_at": at, "raw": "",
              "attributes": {"plate": PLATE}} for e, at in extra],
        )  # fmt: skip
    cursor = first["next_cursor"]
    while cursor:
        page = await _get(world, "cmd", f"{path}&cursor={cursor}")
        seen += [e["event_id"] for e in page["items"]]  # type: ignore[attr-defined]
        cursor = page["next_cursor"]
    original = {f"gate-{s}-{n}" for s in ("demo-compound", "far") for n in range(6)}
    assert len(seen) == len(set(seen))  # nothing twice
    assert original <= set(seen)  # nothing skipped
    assert "late-old" in seen and "late-new" not in seen  # behind the cursor: on a later page
    # at the instant of the page's last row, a row inserted later has a larger seq: in
    # newest-first order it sorts before that row, so it belongs to the pages already read
    assert "same-time" not in seen
