"""Failover benchmark (issue 16, "How it is judged"): kill the busiest worker mid-stream.

Starts Mosquitto with the shipped persistence settings (config/mosquitto/mosquitto.conf on
a plain loopback listener) and ``--workers`` ``lianfang run`` processes in cluster mode on
one fresh PostgreSQL database (created on ``--database-url``'s server, dropped at the end),
``--sites`` compounds. Once every site is owned and consuming, a publisher process sends a
mixed stream at ``--rate`` events/s for ``--seconds`` while panic presses go out
round-robin over the sites at ``--presses`` a second; after ``--kill-after`` seconds the
worker owning the most sites gets SIGKILL. The benchmark times the takeover (kill until
every orphaned site is leased by a live worker again), stops publishing, waits for the
stored events and the police desk's notifications to drain, counts from the database and
the wire (bench/failover_accounting.py), stops the survivors and prints one JSON line,
last. Not a test; run it by hand:

    python bench/failover.py [--workers 3] [--sites 12] [--rate 400] [--seconds 30]

Wanted: lost 0, duplicates 0, duplicate_incidents 0, duplicate_notifications 0,
panic_incidents == panics_sent, takeover_s within 10 (docs/cluster-operations.md).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import failover_accounting as acc  # noqa: E402
from bench import failover_setup as setup  # noqa: E402
from bench.failover_cluster import (  # noqa: E402
    Cluster,
    Desk,
    owners,
    require_cluster_mode,
    stored_ids,
    wait_holding,
    wait_spread,
    wait_stored,
)
from bench.ingest import bench_database  # noqa: E402
from bench.lean_publisher import LeanPublisher, Template  # noqa: E402


def publish_process(port: int, seed: int, rate: float, n: int, sites: list[str]) -> None:
    """Separate process: the background stream at ``rate`` a second, QoS 1."""
    traffic = setup.background(sites, n, seed)
    lean = LeanPublisher(port, f"failover-pub-{seed}", window=2048)
    lean.publish_all([Template(t, body) for t, body in traffic], rate=rate)
    if not lean.wait_acked(n, 120):
        raise SystemExit(f"broker acknowledged only {lean.acked} of {n}")
    lean.close()


@dataclass
class Disruption:
    """What the scenario did, in wall-clock seconds."""

    start: float  # the kill, or the first stop
    end: float  # every affected site leased by a live worker again
    killed: str | None = None
    killed_sites: int = 0
    takeover_s: float | None = None  # the kill (or the slowest stop) until its sites moved
    restarts: list[dict[str, Any]] = field(default_factory=list)


def owned_elsewhere(
    engine: Engine, cluster: Cluster, sites: list[str], away_from: str, timeout_s: float
) -> float | None:
    """Seconds until every one of ``sites`` is leased by a worker other than ``away_from``
    (polled every 0.1 s), or None after ``timeout_s``."""
    started = time.time()
    while time.time() - started < timeout_s:
        now_owned = owners(engine)
        if all(now_owned.get(s) not in (None, away_from) for s in sites):
            return round(time.time() - started, 2)
        cluster.check_alive(skip=away_from)
        time.sleep(0.1)
    return None


def kill_busiest(engine: Engine, cluster: Cluster, ttl: float) -> Disruption:
    """SIGKILL to the worker owning the most sites; wait until they are owned again."""
    cluster.check_alive()
    before = owners(engine)
    victim, owned = Counter(before.values()).most_common(1)[0]
    orphaned = sorted(s for s, w in before.items() if w == victim)
    cluster.procs[victim].send_signal(signal.SIGKILL)
    killed_at = time.time()
    cluster.procs[victim].wait()
    takeover = owned_elsewhere(engine, cluster, orphaned, victim, max(60.0, ttl * 4))
    end = killed_at + (takeover if takeover is not None else 60.0)
    return Disruption(killed_at, end, victim, owned, takeover)


def rolling_restart(engine: Engine, cluster: Cluster, ttl: float) -> Disruption:
    """docs/cluster-operations.md, "Rolling restart": each worker in turn stopped with
    SIGTERM, its sites owned by the others, started again, holding sites again."""
    first = time.time()
    restarts: list[dict[str, Any]] = []
    for wid in list(cluster.procs):
        mine = sorted(s for s, w in owners(engine).items() if w == wid)
        stopped_at = time.time()
        proc = cluster.procs[wid]
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stop_s = round(time.time() - stopped_at, 2)
        handover = owned_elsewhere(engine, cluster, mine, wid, max(60.0, ttl * 4))
        restarted_at = time.time()
        cluster.start(wid)
        wait_holding(engine, cluster, wid, 90)
        restarts.append(
            {
                "worker": wid,
                "sites": len(mine),
                "exit_code": proc.returncode,
                "stop_s": stop_s,
                "handover_s": handover,  # from SIGTERM
                "rejoined_s": round(time.time() - restarted_at, 2),
            }
        )
    handovers = [r["handover_s"] for r in restarts]
    slowest = None if None in handovers else max(handovers)
    return Disruption(first, time.time(), takeover_s=slowest, restarts=restarts)


def run(args: argparse.Namespace, workdir: Path, url: str) -> dict[str, Any]:
    from gateway.storage.db import make_engine, migrate

    sites = setup.site_ids(args.sites)
    setup.write_shared_files(workdir, sites)
    broker = setup.ShippedBroker(workdir / "mosquitto")
    broker.workdir.mkdir()
    broker.start()
    engine = make_engine(url)
    migrate(engine)  # once, before N workers race to do it
    cluster = Cluster(workdir, broker.port, url, args.lease_ttl)
    desk: Desk | None = None
    try:
        workers = [f"w{i + 1}" for i in range(args.workers)]
        for wid in workers:
            cluster.start(wid)
            if not args.simultaneous_start:
                wait_holding(engine, cluster, wid, 60)
        wait_spread(engine, cluster, sites, 90)
        desk = Desk(broker.port)
        pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="fo-press")
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        probes = [setup.probe(s, i) for i, s in enumerate(sites)]
        for topic, _, body in probes:
            pub.publish(topic, json.dumps(body), qos=1).wait_for_publish(10)
        probe_ids = {eid for _, eid, _ in probes}
        wait_stored(engine, probe_ids, 60, 60)
        if not probe_ids <= set(stored_ids(engine)):
            missing = sorted(probe_ids - set(stored_ids(engine)))
            raise SystemExit(f"failover: sites not consuming (or event ids changed): {missing}")

        n = int(args.rate * args.seconds)
        traffic = setup.background(sites, n, args.seed)
        publisher = subprocess.Popen(
            [sys.executable, __file__, "--publish",
             str(broker.port), str(args.seed), str(args.rate), str(n), ",".join(sites)]
        )  # fmt: skip
        started = time.time()
        pressed: dict[str, float] = {}
        stop_presses = threading.Event()

        def presses() -> None:
            k = 0
            while not stop_presses.is_set():
                topic, eid, body = setup.press(sites, k)
                pressed[eid] = time.time()
                pub.publish(topic, json.dumps(body), qos=1)
                k += 1
                stop_presses.wait(1 / args.presses)

        press_thread = threading.Thread(target=presses, name="presses")
        press_thread.start()
        time.sleep(args.kill_after)
        if args.scenario == "kill":
            disruption = kill_busiest(engine, cluster, args.lease_ttl)
        else:
            disruption = rolling_restart(engine, cluster, args.lease_ttl)
        cluster.check_alive(skip=disruption.killed)
        publisher.wait(args.seconds + 120)
        stop_presses.set()
        press_thread.join()
        published_until = time.time()
        pub.loop_stop()
        pub.disconnect()

        sent_ids = set(setup.background_ids(traffic)) | probe_ids | set(pressed)
        wait_stored(engine, sent_ids, 180, 30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not set(pressed) <= desk.first_new.keys():
            time.sleep(0.5)
        time.sleep(2)  # late duplicates, if any, have time to show
        events = acc.tally_events(sent_ids, stored_ids(engine))
        with engine.connect() as conn:
            incidents = [
                dict(r)
                for r in conn.execute(
                    text("SELECT rule_id, group_key, site, category, event_ids FROM incidents")
                ).mappings()
            ]
            outbox = [
                dict(r)
                for r in conn.execute(
                    text(
                        "SELECT incident_id, occasion, level, recipient_kind, recipient_id, "
                        "channel FROM notifications"
                    )
                ).mappings()
            ]
        incident_tally = acc.tally_incidents(incidents, pressed)
        duplicate_rows = acc.duplicate_notification_rows(outbox)
        latency = {e: desk.first_new[e] - t for e, t in pressed.items() if e in desk.first_new}
        in_failover = acc.during(pressed, disruption.start, disruption.end)
        return {
            "workers": args.workers,
            "scenario": args.scenario,
            "killed": disruption.killed,
            "killed_sites": disruption.killed_sites,
            "sites": args.sites,
            "events_sent": events.sent,
            "events_stored": events.stored,
            "lost": events.lost,
            "duplicates": events.duplicates,
            "duplicate_incidents": incident_tally.duplicate_incidents,
            "duplicate_notifications": acc.duplicate_deliveries(desk.messages),
            "duplicate_notification_rows": sum(duplicate_rows.values()),
            "duplicate_notification_rows_by_occasion": duplicate_rows,
            "panics_sent": len(pressed),
            "panic_incidents": incident_tally.panic_incidents,
            "panics_notified": len(latency),
            "takeover_s": disruption.takeover_s,
            "panic_p99_ms_during_failover": acc.percentile_ms(
                [latency[e] for e in in_failover if e in latency], 0.99
            ),
            "panics_during_failover": len(in_failover),
            "panics_during_failover_not_notified": sum(e not in latency for e in in_failover),
            "panic_p50_ms": acc.percentile_ms(list(latency.values()), 0.50),
            "panic_p99_ms": acc.percentile_ms(list(latency.values()), 0.99),
            "unexpected_events": events.unexpected,
            "worker_tracebacks": cluster.tracebacks(),
            "lost_examples": list(events.lost_examples),
            "panics_without_incident": list(incident_tally.panics_without_incident[:5]),
            "restarts": disruption.restarts,
            "publish_s": round(published_until - started, 1),
            "stream_outlasted_disruption": published_until >= disruption.end,
            "rate": args.rate,
            "kill_after_s": args.kill_after,
            "lease_ttl_s": args.lease_ttl,
            "machine_cores": os.cpu_count(),
        }
    finally:
        if desk is not None:
            desk.close()
        cluster.stop()
        engine.dispose()
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--sites", type=int, default=12)
    parser.add_argument("--rate", type=float, default=400.0, help="background events/s")
    parser.add_argument("--presses", type=float, default=4.0, help="panic presses/s")
    parser.add_argument(
        "--scenario",
        choices=["kill", "rolling"],
        default="kill",
        help="kill: SIGKILL the busiest worker; rolling: restart every worker in turn",
    )
    parser.add_argument(
        "--seconds", type=float, help="how long to publish (default 30; rolling: 60)"
    )
    parser.add_argument(
        "--kill-after", type=float, default=10.0, help="s into the stream (rolling: the first stop)"
    )
    parser.add_argument("--lease-ttl", type=float, default=6.0, help="cluster.lease_ttl_s")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--database-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server (any existing database): a fresh database is created there "
        "for the run and dropped afterwards",
    )
    parser.add_argument(
        "--simultaneous-start",
        action="store_true",
        help="start every worker at once (default: one after the other, each once it holds a "
        "site: workers starting together raced on the grid import, see the docs)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    parser.add_argument("--publish", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish:
        port, seed, rate, n, sites = args.publish
        publish_process(int(port), int(seed), float(rate), int(n), sites.split(","))
        return
    if args.seconds is None:
        args.seconds = 60.0 if args.scenario == "rolling" else 30.0
    require_cluster_mode()
    if args.workers < 2 or args.sites < args.workers:
        raise SystemExit("failover: at least 2 workers and as many sites as workers")
    os.environ.setdefault("LIANFANG_PII_KEY", "bench-only-key")
    tmp = tempfile.mkdtemp(prefix="lianfang-failover-")
    keep = args.keep
    try:
        with bench_database(args.database_url, Path(tmp)) as url:
            if not url.startswith("postgresql"):
                raise SystemExit("failover: cluster mode needs a PostgreSQL --database-url")
            result = run(args, Path(tmp), url)
    except BaseException:
        keep = True  # the workers' logs say why
        raise
    finally:
        if keep:
            print(f"failover: work folder kept (workers' logs): {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
