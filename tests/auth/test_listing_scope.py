"""Grid people / household listings and statistics are narrowed to the caller's area."""

from __future__ import annotations

import pytest

from tests.auth.conftest import World
from tests.incidents.helpers import T0

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def _get(w: World, user: str, path: str) -> list[dict[str, object]]:
    r = await w.client.get(path, headers=w.as_(user))
    assert r.status_code == 200, r.text
    data: list[dict[str, object]] = r.json()
    return data


async def test_households_only_of_own_cells(shared_world: World) -> None:
    w1 = {h["id"] for h in await _get(shared_world, "w1", "/api/grid/households")}
    assert "1-1-101" in w1 and "6-1-102" not in w1
    h2 = {h["id"] for h in await _get(shared_world, "h2", "/api/grid/households")}
    assert "6-1-102" in h2 and "1-1-101" not in h2
    everything = {h["id"] for h in await _get(shared_world, "cmd", "/api/grid/households")}
    assert {"1-1-101", "6-1-102"} <= everything
    asked = await _get(shared_world, "w1", "/api/grid/households?site=" + "demo-compound")
    assert "6-1-102" not in {h["id"] for h in asked}


async def test_people_only_of_own_cells(shared_world: World) -> None:
    everyone = await _get(shared_world, "cmd", "/api/grid/people")
    w1 = await _get(shared_world, "w1", "/api/grid/people")
    h2 = await _get(shared_world, "h2", "/api/grid/people")
    assert w1 and h2 and len(w1) < len(everyone) and len(h2) < len(everyone)
    for person in w1:
        scopes: dict[str, list[str]] = person["scopes"]  # type: ignore[assignment]
        assert scopes.get("beats") or any(c.startswith("shifan-01") for c in scopes["cells"])
    only_h2 = {p["id"] for p in h2} - {p["id"] for p in w1}
    assert only_h2  # someone of shifan-02 only, not listed for the shifan-01 worker
    other = await _get(shared_world, "w1", "/api/grid/people?cell=shifan-02")
    assert {p["id"] for p in other} <= {p["id"] for p in w1}
    assert not {p["id"] for p in other} & only_h2


async def test_stats_only_of_own_cells(shared_world: World) -> None:
    day = T0.date().isoformat()
    for path in (f"/api/stats/summary?day={day}", f"/api/stats/summary?period=month&day={day}"):
        cmd = (await shared_world.client.get(path, headers=shared_world.as_("cmd"))).json()
        h2 = (await shared_world.client.get(path, headers=shared_world.as_("h2"))).json()
        assert cmd["total"] >= 4
        assert h2["total"] == 1  # only the incident in shifan-02-b6
    r = await shared_world.client.get(
        f"/api/stats/ranking?by=community&day={day}", headers=shared_world.as_("h2")
    )
    assert r.status_code == 200
    assert sum(int(row.get("total", 0) or 0) for row in r.json()["rows"]) <= 1
