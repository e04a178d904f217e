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
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import failover_accounting as acc  # noqa: E402
from bench import failover_setup as setup  # noqa: E402
from bench.ingest import bench_database  # noqa: E402
from bench.lean_publisher import LeanPublisher, Template  # noqa: E402
from tests.support.brokers import free_port  # noqa: E402

OWNED = text(
    "SELECT site, worker_id FROM site_leases "
    "WHERE worker_id IS NOT NULL AND expires_at > now() ORDER BY site"
)


class Unavailable(SystemExit):
    pass


def require_cluster_mode() -> None:
    """Fail at once, clearly, where this checkout has no cluster mode yet."""
    try:
        from gateway.cluster.config import ClusterConfig  # noqa: F401

        from gateway.config.settings import GatewayConfig
    except ImportError as exc:
        raise Unavailable(
            f"failover: cluster mode is not available in this checkout ({exc}); it needs "
            "gateway/cluster (issue 16: leases, per-site sessions)"
        ) from None
    if "cluster" not in GatewayConfig.model_fields:
        raise Unavailable("failover: lianfang.yaml has no `cluster:` section in this checkout")


def lianfang_command() -> list[str]:
    """`lianfang` from this checkout (run with cwd ROOT), whatever the venv has installed."""
    return [sys.executable, "-c", "from gateway.cli.main import app; app()"]


def owners(engine: Engine) -> dict[str, str]:
    """site → worker id of every valid lease (the database's clock)."""
    with engine.connect() as conn:
        return {site: worker for site, worker in conn.execute(OWNED).all()}


class Desk:
    """The police desk: a plain MQTT subscriber on its notification topics."""

    def __init__(self, port: int) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.first_new: dict[str, float] = {}  # press event id → arrival (wall clock)
        self._lock = threading.Lock()
        ready = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id="failover-desk"
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: ready.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("lianfang/notify/police-desk/#", qos=1)
        self.client.loop_start()
        if not ready.wait(10):
            raise SystemExit("failover: the desk could not subscribe")

    def _on_message(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        now = time.time()
        body = json.loads(m.payload)
        with self._lock:
            self.messages.append((m.topic, body))
            if body.get("occasion") == "new" and body.get("event_ids"):
                self.first_new.setdefault(body["event_ids"][0], now)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Cluster:
    """The worker processes, by worker id."""

    def __init__(self, workdir: Path, broker_port: int, url: str, ttl: float) -> None:
        self.workdir, self.broker_port, self.url, self.ttl = workdir, broker_port, url, ttl
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, worker_id: str) -> None:
        cfg = setup.write_worker_config(
            self.workdir,
            worker_id,
            broker_port=self.broker_port,
            api_port=free_port(),
            database_url=self.url,
            lease_ttl_s=self.ttl,
        )
        log = (self.workdir / f"{worker_id}.log").open("wb")
        self.procs[worker_id] = subprocess.Popen(
            [*lianfang_command(), "run", "--config", str(cfg)],
            stdout=log,
            stderr=log,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    def check_alive(self, skip: str | None = None) -> None:
        for wid, proc in self.procs.items():
            if wid != skip and proc.poll() is not None:
                raise SystemExit(
                    f"failover: worker {wid} exited ({proc.returncode}):\n" + self.log_tail(wid)
                )

    def log_tail(self, worker_id: str, lines: int = 30) -> str:
        path = self.workdir / f"{worker_id}.log"
        text_ = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text_.splitlines()[-lines:])

    def tracebacks(self) -> dict[str, int]:
        """Tracebacks in each worker's log: errors the counts above may not show."""
        out = {}
        for wid in self.procs:
            path = self.workdir / f"{wid}.log"
            log = path.read_text(errors="replace") if path.exists() else ""
            out[wid] = log.count("Traceback (most recent call last)")
        return out

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for wid, proc in self.procs.items():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                print(f"failover: worker {wid} did not stop in 30 s, killed", file=sys.stderr)
                proc.kill()
                proc.wait()


def wait_spread(engine: Engine, cluster: Cluster, sites: list[str], timeout_s: float) -> None:
    """Until every site is owned, every worker owns one, and that holds for 2 s."""
    deadline = time.monotonic() + timeout_s
    stable_since, last = 0.0, {}
    while time.monotonic() < deadline:
        cluster.check_alive()
        now_owned = owners(engine)
        good = set(now_owned) == set(sites) and set(now_owned.values()) == set(cluster.procs)
        if good and now_owned == last:
            if time.monotonic() - stable_since >= 2.0:
                return
        else:
            stable_since, last = time.monotonic(), now_owned
        time.sleep(0.2)
    raise SystemExit(f"failover: sites not spread over the workers in {timeout_s:.0f} s: {last}")


def wait_holding(engine: Engine, cluster: Cluster, worker_id: str, timeout_s: float) -> None:
    """Until ``worker_id`` holds a lease: it has finished starting (schema, grid import)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        cluster.check_alive()
        if worker_id in owners(engine).values():
            return
        time.sleep(0.2)
    raise SystemExit(f"failover: {worker_id} holds no site {timeout_s:.0f} s after its start")


def stored_ids(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT event_id FROM events"))]


def wait_stored(engine: Engine, ids: set[str], timeout_s: float, idle_s: float) -> None:
    """Until every id is stored, or ``timeout_s`` passed, or nothing new came for ``idle_s``."""
    deadline, idle_since, last = time.monotonic() + timeout_s, time.monotonic(), -1
    while time.monotonic() < deadline and time.monotonic() - idle_since < idle_s:
        have = len(ids.intersection(stored_ids(engine)))
        if have == len(ids):
            return
        if have != last:
            last, idle_since = have, time.monotonic()
        time.sleep(0.5)


def publish_process(port: int, seed: int, rate: float, n: int, sites: list[str]) -> None:
    """Separate process: the background stream at ``rate`` a second, QoS 1."""
    traffic = setup.background(sites, n, seed)
    lean = LeanPublisher(port, f"failover-pub-{seed}", window=2048)
    lean.publish_all([Template(t, body) for t, body in traffic], rate=rate)
    if not lean.wait_acked(n, 120):
        raise SystemExit(f"broker acknowledged only {lean.acked} of {n}")
    lean.close()


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
        cluster.check_alive()
        before = owners(engine)
        victim, owned = Counter(before.values()).most_common(1)[0]
        orphaned = sorted(s for s, w in before.items() if w == victim)
        cluster.procs[victim].send_signal(signal.SIGKILL)
        killed_at = time.time()
        cluster.procs[victim].wait()
        takeover_s: float | None = None
        while time.time() - killed_at < max(60.0, args.lease_ttl * 4):
            now_owned = owners(engine)
            if all(now_owned.get(s) not in (None, victim) for s in orphaned):
                takeover_s = round(time.time() - killed_at, 2)
                break
            time.sleep(0.1)
        cluster.check_alive(skip=victim)
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
        latency = {e: desk.first_new[e] - t for e, t in pressed.items() if e in desk.first_new}
        window_end = killed_at + (takeover_s if takeover_s is not None else 60.0)
        in_failover = acc.during(pressed, killed_at, window_end)
        return {
            "workers": args.workers,
            "killed": victim,
            "killed_sites": owned,
            "sites": args.sites,
            "events_sent": events.sent,
            "events_stored": events.stored,
            "lost": events.lost,
            "duplicates": events.duplicates,
            "duplicate_incidents": incident_tally.duplicate_incidents,
            "duplicate_notifications": acc.duplicate_deliveries(desk.messages),
            "duplicate_notification_rows": acc.duplicate_notification_rows(outbox),
            "panics_sent": len(pressed),
            "panic_incidents": incident_tally.panic_incidents,
            "panics_notified": len(latency),
            "takeover_s": takeover_s,
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
            "publish_s": round(published_until - started, 1),
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
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to publish")
    parser.add_argument("--kill-after", type=float, default=10.0, help="s into the stream")
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
    require_cluster_mode()
    if args.workers < 2 or args.sites < args.workers:
        raise SystemExit("failover: at least 2 workers and as many sites as workers")
    os.environ.setdefault("LIANFANG_PII_KEY", "bench-only-key")
    tmp = tempfile.mkdtemp(prefix="lianfang-failover-")
    try:
        with bench_database(args.database_url, Path(tmp)) as url:
            if not url.startswith("postgresql"):
                raise SystemExit("failover: cluster mode needs a PostgreSQL --database-url")
            result = run(args, Path(tmp), url)
    finally:
        if args.keep:
            print(f"failover: work folder kept: {tmp}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
