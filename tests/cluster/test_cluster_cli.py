"""``lianfang cluster status`` against a populated lease table, its ``--help``, and cluster
mode refused on SQLite with one clear line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from gateway.cli.main import app as lianfang
from gateway.cli.startup import StartupError, check_cluster_database
from gateway.cluster import leases
from gateway.cluster.config import ClusterConfig, process_lock_file
from gateway.storage.writer import BatchWriter, WriteItem
from tests.test_api import make_event
from tests.test_startup_errors import run_cli, write_config


def test_cluster_status_help() -> None:
    result = CliRunner().invoke(lianfang, ["cluster", "status", "--help"])
    assert result.exit_code == 0
    assert "--json" in result.output and "--database" in result.output


@pytest.mark.postgres
def test_cluster_status_shows_workers_sites_and_lag(engine: Engine) -> None:
    with engine.begin() as conn:
        leases.add_sites(conn, ["a", "b", "c"])
        leases.register(conn, "w1", "host-1", 101, 60.0)
        leases.register(conn, "w2", "host-2", 202, 60.0)
        leases.acquire(conn, "w1", ["a"], count=1, ttl_s=60)
        leases.acquire(conn, "w2", ["b"], count=1, ttl_s=60)
        leases.release_all(conn, "w2")  # w2 stopped: b is nobody's
        leases.acquire(conn, "w1", ["b"], count=1, ttl_s=60)  # and w1 took it (token 2)
    writer = BatchWriter(engine, interval_s=0.01)
    writer.start()
    writer.submit(WriteItem([make_event(1, site="a")]))
    assert writer.flush(30)
    writer.stop()
    url = engine.url.render_as_string(hide_password=False)

    out = CliRunner().invoke(lianfang, ["cluster", "status", "--database", url, "--json"])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    workers = {w["id"]: w for w in report["workers"]}
    assert workers["w1"]["state"] == "live" and workers["w1"]["host"] == "host-1"
    assert workers["w2"]["state"] == "stopped" and workers["w2"]["sites"] == []
    owned = {s["site"]: s for s in workers["w1"]["sites"]}
    assert {k: v["token"] for k, v in owned.items()} == {"a": 1, "b": 2}
    assert owned["a"]["newest_event_age_s"] > 0  # its event was received in 2026-05
    assert owned["b"]["newest_event_age_s"] is None  # nothing stored
    assert [(s["site"], s["token"], s["worker_id"]) for s in report["unowned"]] == [("c", 0, None)]

    text_out = CliRunner().invoke(lianfang, ["cluster", "status", "--database", url])
    assert text_out.exit_code == 0, text_out.output
    assert "w1 [live] host host-1 pid 101" in text_out.output
    assert "b  token 2" in text_out.output and "no events" in text_out.output
    assert "unowned sites: 1" in text_out.output


def test_cluster_status_on_sqlite_says_there_is_no_cluster(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    out = CliRunner().invoke(lianfang, ["cluster", "status", "--database", url])
    assert out.exit_code == 2 and "needs PostgreSQL" in out.output


def test_cluster_mode_refuses_sqlite() -> None:
    with pytest.raises(StartupError) as caught:
        check_cluster_database(True, "sqlite:///data/lianfang.db")
    line = str(caught.value)
    assert "集群模式需要 PostgreSQL" in line and "cluster.enabled" in line and "\n" not in line
    check_cluster_database(False, "sqlite:///data/lianfang.db")  # single process: fine
    check_cluster_database(True, "postgresql+psycopg://gw@db/lianfang")


def test_run_in_cluster_mode_on_sqlite_exits_with_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, "cluster: {enabled: true, worker_id: w1}\n")
    done = run_cli("run", "--config", str(config))
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0 and "needs PostgreSQL" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_workers_do_not_share_the_consumer_lock(tmp_path: Path) -> None:
    single = process_lock_file(tmp_path, "gw", ClusterConfig())
    one = process_lock_file(tmp_path, "gw", ClusterConfig(enabled=True, worker_id="w1"))
    two = process_lock_file(tmp_path, "gw", ClusterConfig(enabled=True, worker_id="w2"))
    assert len({single, one, two}) == 3


def test_renewal_must_fit_twice_in_the_ttl() -> None:
    assert ClusterConfig().renew_period_s == pytest.approx(10 / 3)
    with pytest.raises(ValueError, match="at most half"):
        ClusterConfig(lease_ttl_s=4, renew_every_s=3)
    with pytest.raises(ValueError, match="worker_id"):
        ClusterConfig(worker_id="bad id/1")


@pytest.mark.postgres
def test_workers_starting_together_migrate_once() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from gateway.storage.db import make_engine, migrate
    from tests.conftest import postgres_database

    with postgres_database() as url:
        engines = [make_engine(url) for _ in range(3)]
        pool = ThreadPoolExecutor(3)
        try:
            for done in [pool.submit(migrate, e) for e in engines]:
                # none failed on (or waits forever for) a table another one was making
                done.result(timeout=60)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            for e in engines:
                e.dispose()


def test_config_check_refuses_cluster_mode_on_sqlite(tmp_path: Path) -> None:
    config = write_config(tmp_path, "cluster: {enabled: true}\n")
    result = CliRunner().invoke(lianfang, ["config", "check", "--offline", str(config)])
    assert result.exit_code == 1 and "cluster.enabled" in result.output
    assert "needs PostgreSQL" in result.output
