"""Routing-tree cases, typed matchers, ``lianfang routes test``; grid loading errors with
file and key path, CSV rows, import into the database; statistics on a known timeline."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gateway.cli.main import app as _unused  # noqa: F401  (CLI importable)
from gateway.config.errors import ConfigErrors
from gateway.grid.directory import GridDirectory
from gateway.grid.model import ACCOUNT_ONLY_ROLES, Role, load_grid
from gateway.grid.store import import_grid, read_directory
from gateway.incidents import stats as st
from gateway.routing import RouteInput, load_routing, match_routes, plan
from tests.incidents.helpers import CONFIG, T0, engine_at, registry

ROUTING = CONFIG / "routing.yaml"


@pytest.fixture(scope="module")
def grid() -> GridDirectory:
    reg = registry()
    return GridDirectory.from_config(load_grid(CONFIG / "grid", reg), reg)


def routes(category: str, severity: str = "P2", **kw: object) -> list[str]:
    cfg = load_routing(ROUTING, label_keys={"team", "notify", "escalated"})
    return [m.path for m in match_routes(cfg.route, RouteInput(category, severity, **kw))]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("category", "kw", "expected"),
    [
        ("panic", {"labels": {"team": "police"}}, ["panic"]),  # first match wins
        ("vehicle", {"labels": {"team": "police"}}, ["police"]),
        ("intrusion", {}, ["intrusion"]),
        ("intrusion", {"labels": {"team": "police"}}, ["police"]),
        ("device-health", {}, ["device-health"]),
        ("dispute", {"source": "manual"}, ["reports"]),
        ("other", {"source": "rule"}, ["route"]),  # falls to the root receiver
    ],
)
def test_routing_tree_cases(category: str, kw: dict[str, object], expected: list[str]) -> None:
    assert routes(category, **kw) == expected


def _write(tmp: Path, tree: dict[str, object]) -> Path:
    base = yaml.safe_load(ROUTING.read_text())
    base["route"] = tree
    path = tmp / "routing.yaml"
    path.write_text(yaml.safe_dump(base, allow_unicode=True))
    return path


def test_continue_inheritance_and_group_wait(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        {
            "receivers": ["command-centre"],
            "group_wait": "30s",
            "repeat_interval": "4h",
            "routes": [
                {
                    "name": "a",
                    "matchers": {"category": "panic"},
                    "continue": True,
                    "receivers": ["police-desk"],
                    "group_wait": "0s",
                },
                {
                    "name": "b",
                    "matchers": {"severity": "P1"},
                    "routes": [{"name": "b1", "matchers": {"cell": "shifan-01"}}],
                },
                {"name": "c", "matchers": {"category": "panic"}, "receivers": ["neighbours"]},
            ],
        },
    )
    cfg = load_routing(path)
    got = match_routes(cfg.route, RouteInput("panic", "P1", cell="shifan-01"))
    assert [(m.path, m.receivers, m.group_wait) for m in got] == [
        ("a", ("police-desk",), 0.0),
        ("b1", ("command-centre",), 30.0),
    ]


@pytest.mark.parametrize(
    ("tree", "where", "needle"),
    [
        (
            {
                "receivers": ["command-centre"],
                "routes": [{"matchers": {"labels": {"tem": "police"}}}],
            },
            "route.routes[0].matchers.labels",
            "unknown label key 'tem'",
        ),
        (
            {"receivers": ["command-centre"], "routes": [{"matchers": {"categroy": "panic"}}]},
            "route.routes[0].matchers.categroy",
            "unknown key",
        ),
        (
            {"receivers": ["command-centre"], "routes": [{"matchers": {"category": "fires"}}]},
            "route.routes[0].matchers.category[0]",
            "Input should be",
        ),
        (
            {"receivers": ["command-centre"], "routes": [{"matchers": {"cell": "shifan-99"}}]},
            "route.routes[0].matchers.cell",
            "unknown cell 'shifan-99'",
        ),
        ({"receivers": ["nobody"]}, "<root>", "unknown receiver 'nobody'"),
    ],
)
def test_typos_are_validation_errors(
    tmp_path: Path, tree: dict[str, object], where: str, needle: str
) -> None:
    with pytest.raises(ConfigErrors) as exc:
        load_routing(_write(tmp_path, tree), cells={"shifan-01", "shifan-02"})
    text = str(exc.value)
    assert needle in text and str(tmp_path / "routing.yaml") in text
    assert any(e.key_path == where for e in exc.value.errors), text


def test_receivers_are_resolved_through_the_grid(grid: GridDirectory) -> None:
    cfg = load_routing(ROUTING)
    loc = grid.locate(device_id="panic-1-101")
    got = plan(cfg, grid, RouteInput("panic", "P1", cell=loc.cell), loc)
    keys = {(d.recipient.key, d.channel) for d in got}
    assert ("police-desk/beat-taiping-1", "mqtt") in keys
    assert {d.recipient.key for d in got if d.receiver == "grid-worker"} == {
        "person/p-worker-1",
        "person/p-worker-2",
    }
    assert ("neighbour-group/ng-1", "mqtt") in keys
    assert not [d for d in got if d.receiver == "neighbours" and d.ack_required]


def test_routes_test_cli_prints_receivers() -> None:
    from gateway.cli.routes_cmd import app

    result = CliRunner().invoke(
        app,
        [
            "test",
            "category=panic",
            "cell=shifan-01",
            "--routing",
            str(ROUTING),
            "--grid",
            str(CONFIG / "grid"),
            "--sites",
            str(CONFIG / "sites"),
            "--rules",
            str(CONFIG / "rules"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "route panic: police-desk, grid-worker, community, neighbours" in result.output
    assert "police-desk/beat-taiping-1" in result.output and "person/p-worker-1" in result.output
    bad = CliRunner().invoke(app, ["test", "categroy=panic"])
    assert bad.exit_code == 2
    # the neighbours are the household's group: without household= they are nobody, said so
    assert "neighbours       nobody (neighbours): needs household=" in result.output


def _routes_test(*pairs: str) -> str:
    from gateway.cli.routes_cmd import app

    result = CliRunner().invoke(
        app,
        [
            "test",
            *pairs,
            *("--routing", str(ROUTING), "--grid", str(CONFIG / "grid")),
            *("--sites", str(CONFIG / "sites"), "--rules", str(CONFIG / "rules")),
        ],
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_routes_test_says_a_property_route_needs_the_site() -> None:
    """A cell locates police beats and grid staff, not a compound: the property manager is
    found by site, and the tester says so instead of doubting the cell."""
    out = _routes_test("category=access", "cell=shifan-01")
    assert "property         nobody (property_manager): needs site=" in out
    assert "is the cell on the grid" not in out
    with_site = _routes_test("category=access", "cell=shifan-01", "site=demo-compound")
    assert "person/p-property" in with_site and "nobody" not in with_site


def test_routes_test_names_a_cell_not_on_the_grid() -> None:
    out = _routes_test("category=panic", "cell=no-such-cell")
    assert "police-desk      nobody (police_desk): cell no-such-cell is not on the grid" in out
    assert out.rstrip().endswith("no recipients resolved")


def test_routes_test_warns_of_a_missing_grid_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.cli.routes_cmd import app

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app,
        ["test", "category=panic", "cell=shifan-01", "--routing", str(ROUTING),
         "--rules", str(CONFIG / "rules")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"no config/grid (looked in {tmp_path / 'config' / 'grid'})" in result.stderr
    assert "--grid" in result.stderr


# -- grid -------------------------------------------------------------------------------


def test_demo_grid_has_every_role_and_thirty_households(grid: GridDirectory) -> None:
    roles = {r for p in grid.people.values() for r in p.roles}
    assert roles == set(Role) - ACCOUNT_ONLY_ROLES
    assert len(grid.households) == 30
    assert sorted(len(grid.group_members(g)) for g in grid.groups) == [10, 10, 10]
    assert grid.locate(device_id="cam-west").cell == "shifan-02"
    assert grid.locate(device_id="door-garage-1").cell == "shifan-01"  # site default


def test_grid_errors_name_file_key_path_and_csv_row(tmp_path: Path) -> None:
    d = tmp_path / "grid"
    d.mkdir()
    (d / "grid.yaml").write_text(
        "street_offices: [{id: s1, name: 街道}]\n"
        "communities: [{id: c1, name: 社区, street: s2}]\n"
        "cells: [{id: g1, name: 网格, community: c1, sites: [nowhere]}]\n"
        "beats: [{id: b1, name: 警务区, cells: [g1, g9]}]\n"
        "neighbour_groups: [{id: n1, name: 组, cell: g1}]\n"
        "peple: []\n"
    )
    (d / "households.csv").write_text(
        "id,site,place,address,group,contact_name,contact_phone\n"
        "h1,demo-compound,b1-u1,地址,n1,张三,13800000000\n"
        "h2,demo-compound,b1-u1,地址,n2,李四,12345\n"
    )
    (d / "people.csv").write_text("id,name,roles,cells\np1,王五,grid_wroker,g1\n")
    with pytest.raises(ConfigErrors) as exc:
        load_grid(d, registry())
    found = {(Path(e.file).name, e.key_path) for e in exc.value.errors}
    assert ("grid.yaml", "peple") in found
    assert ("grid.yaml", "communities[0].street") in found
    assert ("grid.yaml", "cells[0].sites[0]") in found
    assert ("grid.yaml", "beats[0].cells[1]") in found
    assert ("households.csv", "row 3.contacts[0].phone") in found
    assert ("people.csv", "row 2.roles[0]") in found
    assert ("households.csv", "row 3.group") not in found  # row 3 failed validation first


def test_import_replaces_the_grid_and_never_stores_phones(tmp_path: Path) -> None:
    engine = engine_at(tmp_path)
    reg = registry()
    counts = import_grid(engine, load_grid(CONFIG / "grid", reg))
    assert counts["households"] == 30 and counts["people"] == 18
    import_grid(engine, load_grid(CONFIG / "grid", reg))  # idempotent replace
    directory = read_directory(engine, reg)
    assert [p.id for p in directory.people_in_cell(Role.GRID_HEAD, "shifan-02-b6")] == ["p-head-2"]
    with engine.connect() as conn:
        dump = " ".join(
            str(r)
            for t in ("grid_people", "grid_households")
            for r in conn.exec_driver_sql(f"select * from {t}")
        )
    assert "13800000021" not in dump and "13900000000" not in dump
    assert "*******0021" in dump  # masked: the last four digits only


# -- statistics on a known timeline -------------------------------------------------------


def _e(i: int, minutes: float, action: str, to: str | None = None, **data: object) -> st.Entry:
    return st.Entry(
        i, T0 + timedelta(minutes=minutes), str(data.pop("actor", "x")), action, to, dict(data)
    )


def test_statistics_from_a_known_timeline() -> None:
    incs = [
        st.IncidentRow(i, cat, src, "shifan", "shifan-01", T0)
        for i, cat, src in [
            (1, "panic", "rule"),
            (2, "hazard", "hazard"),
            (3, "access", "rule"),
            (4, "access", "rule"),
        ]
    ]
    entries = [
        _e(1, 0, "open", "discovered"),
        _e(1, 1, "acknowledge"),
        _e(1, 2, "dispatch", "dispatched", assignees=["w1"]),
        _e(1, 3, "accept", "handling"),
        _e(1, 30, "feedback", "feedback"),
        _e(1, 60, "verify", "verified"),
        _e(1, 70, "evaluate", "evaluated", score=4),
        _e(2, 0, "open", "discovered", actor="w2"),
        _e(2, 5, "acknowledge"),
        _e(2, 6, "escalate"),
        _e(2, 7, "dispatch", "dispatched", assignees=["w1"]),
        _e(2, 8, "accept", "handling"),
        _e(2, 100, "feedback", "feedback"),
        _e(2, 120, "verify", "verified"),
        _e(3, 0, "open", "discovered"),
        _e(3, 3, "acknowledge"),
        _e(3, 10, "false_alarm", "false_alarm"),
        _e(4, 0, "open", "discovered"),
        _e(4, 1, "cancel", "cancelled"),
    ]
    facts = st.facts(incs, entries)
    s = st.summarise(facts)
    assert s.total == 4
    assert s.by_stage == {"evaluated": 1, "verified": 1, "false_alarm": 1, "cancelled": 1}
    assert s.closing_rate == 1.0  # cancelled incidents are not counted
    assert s.handling_rate == 1.0
    assert s.closed_in_cell_share == round(2 / 3, 4)
    assert (s.ack_p50_s, s.ack_p90_s) == (180.0, 300.0)  # 60, 180, 300 s
    assert (s.close_p50_s, s.close_p90_s) == (3600.0, 7200.0)  # 600, 3600, 7200 s
    ranking = st.rank(facts, "grid_worker")
    assert [r.key for r in ranking] == ["w1", "w2"]
    w1 = ranking[0]
    assert (w1.incidents, w1.closed, w1.quality) == (2, 2, 0.8)
    speed = round(((1 - 1 / 72) + (1 - 2 / 72)) / 2, 4)
    assert w1.speed == speed
    base = 30 * 1 + 20 * 1 + 20 * 0.5 + 15 * speed + 15 * 0.8
    assert w1.score == round(0.9 * base, 2)
    assert ranking[1].reports == 1
    csv_text = st.ranking_csv(ranking)
    assert csv_text.splitlines()[0].startswith("rank,key,score")
    assert st.rank(facts, "community")[0].key == "shifan"


def test_an_integrator_is_an_account_not_a_person_on_the_grid(tmp_path: Path) -> None:
    d = tmp_path / "grid"
    d.mkdir()
    (d / "people.yaml").write_text(
        "people:\n  - {id: p-x, name: 集成商小王, roles: [integrator]}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigErrors) as err:
        load_grid(d)
    assert "integrator is an account role" in str(err.value)
