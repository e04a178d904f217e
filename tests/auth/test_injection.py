"""Data a user typed never runs where it is exported: dispatch takes only grid people in the
incident's scope, and no cell of a CSV export starts with a character a spreadsheet runs."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from gateway.csv_export import FORMULA_START, csv_text, spreadsheet_safe
from gateway.incidents.tables import incident_timeline
from tests.auth.conftest import World
from tests.incidents.helpers import T0

FORMULA = "=cmd|' /C calc'!A0"
# Every CSV export and the query that fills it; a new export must be added here.
CSV_ROUTES = {
    "/api/stats/ranking.csv": [
        {"by": "grid_worker", "day": T0.date().isoformat()},
        {"by": "community", "day": T0.date().isoformat()},
    ],
}


@pytest.mark.parametrize(
    ("value", "cell"),
    [
        (FORMULA, "'" + FORMULA),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("p-worker-1", "p-worker-1"),
        ("a=b", "a=b"),
        (3, "3"),
        (-3, "'-3"),
        (0.5, "0.5"),
        (None, ""),
    ],
)
def test_spreadsheet_safe(value: str | int | float | None, cell: str) -> None:
    assert spreadsheet_safe(value) == cell


def test_csv_text_escapes_every_cell_and_reads_back() -> None:
    text = csv_text(["=h", "b"], [[FORMULA, 1], ["x,y", '"q"']])
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [["'=h", "b"], ["'" + FORMULA, "1"], ["x,y", '"q"']]


async def _dispatch(world: World, user: str, incident: int, *assignees: str) -> int:
    r = await world.client.post(
        f"/api/incidents/{incident}/actions",
        json={"action": "dispatch", "assignees": list(assignees)},
        headers=world.as_(user),
    )
    return r.status_code


async def test_dispatch_takes_grid_people_of_the_incidents_scope(world: World) -> None:
    cell1, far = world.incidents["cell1"], world.incidents["far"]
    # invented ids, a formula, a resident, a person of no cell near it: refused (422)
    assert await _dispatch(world, "w1", cell1, "nobody") == 422
    assert await _dispatch(world, "w1", cell1, FORMULA) == 422
    assert await _dispatch(world, "w1", cell1, "p-worker-1", "ghost") == 422
    assert await _dispatch(world, "cmd", cell1, "p-resident") == 422
    assert await _dispatch(world, "cmd", far, "p-worker-1") == 422  # another compound
    detail = (await world.client.get(f"/api/incidents/{cell1}", headers=world.as_("w1"))).json()
    assert "dispatch" not in [e["action"] for e in detail["timeline"]]
    # the cell's worker, and a worker of another cell of the same community
    assert await _dispatch(world, "w1", cell1, "p-worker-1") == 200
    assert await _dispatch(world, "cmd", cell1, "p-worker-4", "p-head-1") == 200


async def test_no_csv_cell_starts_with_a_formula_character(world: World) -> None:
    """Rows written before the dispatch check (an invented assignee, a formula for a name)
    come out escaped in every export."""
    incident = world.incidents["cell1"]
    with world.rt.engine.begin() as conn:
        conn.execute(
            insert(incident_timeline),
            [
                {
                    "incident_id": incident,
                    "at": datetime(2026, 5, 12, 3, tzinfo=UTC),
                    "actor": "-legacy",
                    "role": "grid_worker",
                    "action": "dispatch",
                    "from_stage": "discovered",
                    "to_stage": "dispatched",
                    "note": "",
                    "attachments": [],
                    "data": {"assignees": [FORMULA, "@evil", "+1"]},
                }
            ],
        )
    exports = {p for p in world.app.openapi()["paths"] if p.endswith(".csv")}
    assert exports == set(CSV_ROUTES)
    seen: list[str] = []
    for path, queries in CSV_ROUTES.items():
        for params in queries:
            r = await world.client.get(path, params=params, headers=world.as_("admin"))
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
            for row in csv.reader(io.StringIO(r.text)):
                for cell in row:
                    assert not cell.startswith(FORMULA_START), (path, params, cell)
                    seen.append(cell)
    assert "'" + FORMULA in seen and "'@evil" in seen and "'+1" in seen
