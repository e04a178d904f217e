"""Ingest benchmark: N realistic mixed events over MQTT (QoS 1) into the gateway's database.

Starts its own Mosquitto on a free loopback port, measures the raw broker throughput
(publisher process → bare paho subscriber) as the baseline, then the gateway: publisher
process → Mosquitto → consumer → profile → Event → batch writer → commit → PUBACK.
Prints one JSON object. Not a test: run it by hand or with `make bench`.

    python bench/ingest.py [--events 200000]
    python bench/ingest.py --database-url postgresql+psycopg://postgres@127.0.0.1/postgres

The database is SQLite in the run's temporary folder unless ``--database-url`` names
another: for PostgreSQL a throw-away database is created on that server (named after the
URL's database, with a random suffix) and dropped at the end, so every run starts empty.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lean_publisher import LeanPublisher, Template  # noqa: E402
from tests.support.brokers import MosquittoBroker  # noqa: E402

SITE = "bench-compound"
N_DOORS, N_GATES, N_CAMERAS, N_PANIC = 200, 4, 16, 300
PLATES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"


def devices() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    out += [{"id": f"door-{i}", "kind": "access", "zone": f"z{i % 8}"} for i in range(N_DOORS)]
    out += [{"id": f"gate-{i}", "kind": "gate"} for i in range(N_GATES)]
    out += [{"id": f"cam-{i}", "kind": "perimeter", "zone": f"z{i % 8}"} for i in range(N_CAMERAS)]
    out += [{"id": f"panic-{i}", "kind": "alarm", "household": f"h{i}"} for i in range(N_PANIC)]
    return out


def payload(rng: random.Random, seq: int) -> tuple[str, dict[str, Any]]:
    """A realistic mix: heartbeats, door traffic, plates, perimeter, the odd alarm."""
    r = rng.random()
    if r < 0.35:
        d = rng.choice(devices_cache)
        body = {"kind": d["kind"], "type": "heartbeat", "attrs": {}}
    elif r < 0.75:
        d = {"id": f"door-{rng.randrange(N_DOORS)}", "kind": "access"}
        t = "access_granted" if rng.random() < 0.9 else "access_denied"
        body = {
            "kind": "access",
            "type": t,
            "attrs": {
                "door": d["id"],
                "card": f"{rng.randrange(10**9):010d}",
                "direction": rng.choice(["in", "out"]),
            },
        }
    elif r < 0.9:
        d = {"id": f"gate-{rng.randrange(N_GATES)}", "kind": "gate"}
        plate = rng.choice(PLATES) + rng.choice("ABCDEFGHJK") + f"{rng.randrange(100000):05d}"
        body = {
            "kind": "gate",
            "type": "plate_read",
            "attrs": {
                "plate": plate,
                "plate_colour": rng.choice(["blue", "green", "yellow"]),
                "confidence": round(rng.uniform(0.8, 1), 3),
                "direction": rng.choice(["in", "out"]),
            },
        }
    elif r < 0.999:
        d = {"id": f"cam-{rng.randrange(N_CAMERAS)}", "kind": "perimeter"}
        body = {
            "kind": "perimeter",
            "type": rng.choice(["motion", "intrusion", "line_crossing"]),
            "attrs": {"zone": f"z{rng.randrange(8)}", "label": "person", "confidence": 0.9},
        }
    else:
        d = {"id": f"panic-{rng.randrange(N_PANIC)}", "kind": "alarm"}
        body = {"kind": "alarm", "type": "panic", "attrs": {"household": "h1", "battery": 80}}
    return f"lianfang/{SITE}/{d['id']}/event", {"v": 1, "seq": seq, **body}


devices_cache = devices()


def publisher(port: int, n: int, seed: int, kind: str = "lean", rate: float = 0) -> None:
    """Separate process: publish n events as fast as QoS 1 allows (or ``rate`` a second, lean
    publisher only); ts = publish time."""
    rng = random.Random(seed)
    prepared = [payload(rng, i) for i in range(n)]
    if kind == "lean":
        lean = LeanPublisher(port, f"bench-pub-{seed}")
        lean.publish_all([Template(t, body) for t, body in prepared], rate=rate or None)
        if not lean.wait_acked(n, 600):
            raise SystemExit(f"broker acknowledged only {lean.acked} of {n} messages")
        lean.close()
        return
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{seed}"
    )
    # paho scans its in-flight table on every PUBACK: a small window publishes fastest.
    client.max_inflight_messages_set(50)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    # paho's packet ids are 16-bit: keep fewer than 65,535 messages outstanding.
    pending: deque[mqtt.MQTTMessageInfo] = deque()
    for t, body in prepared:
        body["ts"] = time.time()  # epoch seconds: publish time, so latency = commit - ts
        pending.append(client.publish(t, json.dumps(body), qos=1))
        if len(pending) > 20_000:
            pending.popleft().wait_for_publish(120)
    for info in pending:
        info.wait_for_publish(120)
    client.disconnect()
    client.loop_stop()


PUBLISHER = "lean"  # set from --publisher


def spawn_publisher(port: int, n: int, seed: int, rate: float = 0) -> subprocess.Popen[bytes]:
    args = [str(port), str(n), str(seed), PUBLISHER, str(rate)]
    return subprocess.Popen([sys.executable, __file__, "--publish", *args])


def broker_baseline(port: int, n: int) -> float:
    """Raw broker throughput: publisher process → Mosquitto → bare paho QoS 1 subscriber."""
    got = 0
    done = threading.Event()
    first: list[float] = []

    def on_message(_c: Any, _u: Any, m: Any) -> None:
        nonlocal got
        if not first:
            first.append(time.perf_counter())
        json.loads(m.payload)
        got += 1
        if got >= n:
            done.set()

    sub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-baseline")
    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.subscribe(f"lianfang/{SITE}/+/event", qos=1)
    sub.loop_start()
    time.sleep(0.5)
    proc = spawn_publisher(port, n, seed=99)
    done.wait(600)
    elapsed = time.perf_counter() - first[0]
    proc.wait()
    sub.disconnect()
    sub.loop_stop()
    return got / elapsed


async def aiomqtt_baseline(port: int, n: int) -> float:
    """The same bare subscriber through aiomqtt (asyncio wrapper around paho), for the choice."""
    import aiomqtt

    got = 0
    first = 0.0
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-aiomqtt") as client:
        await client.subscribe(f"lianfang/{SITE}/+/event", qos=1)
        await asyncio.sleep(0.5)
        proc = spawn_publisher(port, n, seed=98)
        async for message in client.messages:
            if not first:
                first = time.perf_counter()
            json.loads(message.payload)  # type: ignore[arg-type]
            got += 1
            if got >= n:
                break
        elapsed = time.perf_counter() - first
    proc.wait()
    return got / elapsed


def _thread_cpu_s() -> dict[str, float]:
    """CPU seconds per Python thread name (Linux /proc; empty elsewhere)."""
    names = {t.native_id: t.name.split("-client-")[0] for t in threading.enumerate()}
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path("/proc/self/task").glob("*"):
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(task.name), "other")
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def tune(args: argparse.Namespace) -> None:
    """The interpreter settings `lianfang run` applies after start-up (gateway/tuning.py),
    unless --default-gc asks to measure without the garbage-collector part."""
    from gateway.tuning import GC_THRESHOLDS, tune_interpreter

    tune_interpreter(
        switch_interval_s=args.switch_interval_ms / 1000,
        gc_thresholds=gc.get_threshold() if args.default_gc else GC_THRESHOLDS,  # type: ignore[arg-type]
    )
    if args.default_gc:
        gc.unfreeze()


def _process_cpu_s(pid: int) -> float:
    """CPU seconds of another process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def calibration_ms() -> float:
    """Best of three runs of a fixed pure-Python loop: this machine's speed at the time of the
    run, so figures from different days (or noisy neighbours) can be compared."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        total = 0
        for i in range(2_000_000):
            total += i & 7
        best = min(best, time.process_time() - started)
    return round(best * 1000, 1)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime  # noqa: RUF100


@contextmanager
def bench_database(url: str | None, workdir: Path) -> Iterator[str]:
    """The URL the gateway writes to: SQLite in ``workdir`` by default; for a PostgreSQL URL
    a fresh database on that server, dropped afterwards; any other URL as given."""
    if url is None:
        yield f"sqlite:///{workdir / 'data' / 'bench.db'}"
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        yield url
        return
    name = f"{parsed.database or 'lianfang'}_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(parsed, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def write_config(
    workdir: Path, port: int, database: dict[str, Any] | None = None, url: str | None = None
) -> Path:
    """The gateway configuration the benchmarks run: shipped profiles, rules and routing;
    ``database`` overrides settings of the ``database`` section (batch size, interval);
    ``url`` the database (default: SQLite in ``workdir``)."""
    sites = workdir / "sites"
    sites.mkdir()
    (sites / "bench.yaml").write_text(yaml.safe_dump({"id": SITE, "devices": devices_cache}))
    cfg_path = workdir / "lianfang.yaml"
    cfg_path.write_text(yaml.safe_dump({
        "data_dir": str(workdir / "data"),
        "mqtt": {"host": "127.0.0.1", "port": port, "client_id": "bench-gateway"},
        "database": {"url": url or f"sqlite:///{workdir / 'data' / 'bench.db'}", **(database or {})},
        "profiles_dir": str(ROOT / "config" / "profiles"),
        "sites_dir": str(sites),
        "rules_dir": str(ROOT / "config" / "rules"),
        "routing_file": str(ROOT / "config" / "routing.yaml"),
        "grid_dir": str(workdir / "grid"),
    }))  # fmt: skip
    return cfg_path


async def gateway_run(
    workdir: Path, port: int, n: int, args: argparse.Namespace, broker_pid: int, url: str
) -> dict[str, Any]:
    from gateway.config.settings import load_gateway_config
    from gateway.runtime import Gateway

    database = {
        k: v
        for k, v in (("batch_size", args.batch_size), ("batch_interval_ms", args.batch_interval_ms))
        if v is not None
    }
    cfg_path = write_config(workdir, port, database, url)
    gateway = Gateway(
        load_gateway_config(cfg_path), protocol="v311" if args.protocol == "v311" else "v5"
    )
    latencies: list[float] = []
    stored_box = [0]
    cpu_box = [0.0]
    threads_box: dict[str, float] = {}
    finished = threading.Event()
    last_commit = [0.0]
    first_publish = [float("inf")]  # the publisher's clock: "ts" in each payload

    def on_committed(events: list[Any]) -> None:
        now = time.time()
        published = [e.occurred_at.timestamp() for e in events]
        latencies.extend(now - p for p in published)
        first_publish[0] = min(first_publish[0], *published)
        last_commit[0] = now

    gateway.writer.on_committed = on_committed
    await gateway.start()
    tune(args)
    assert await gateway.wait_subscribed(30)
    cpu_started = _cpu_s()
    threads_started = _thread_cpu_s()
    children_started = _children_cpu_s()
    broker_started = _process_cpu_s(broker_pid)
    proc = spawn_publisher(port, n, seed=1, rate=args.rate)

    def watch() -> None:
        idle_since = time.monotonic()
        last = -1
        while True:
            stored = gateway.writer.stats.stored + gateway.writer.stats.duplicates
            if stored >= n:
                break
            if stored != last:
                last, idle_since = stored, time.monotonic()
            elif time.monotonic() - idle_since > 20 and proc.poll() is not None:
                break  # nothing more is coming
            time.sleep(0.05)
        stored_box[0] = gateway.writer.stats.stored
        cpu_box[0] = _cpu_s() - cpu_started
        ended = _thread_cpu_s()
        threads_box.update(
            {
                k: round((v - threads_started.get(k, 0.0)) / n * 1e6, 1)
                for k, v in ended.items()
                if v - threads_started.get(k, 0.0) > 0
            }
        )
        finished.set()

    await asyncio.to_thread(watch)
    broker_cpu = _process_cpu_s(broker_pid) - broker_started
    proc.wait()
    publisher_cpu = _children_cpu_s() - children_started  # counted once the child is reaped
    # From the first message published to the last one committed (as the baselines count
    # from their first message): the publisher's start-up is not the gateway's time.
    elapsed = last_commit[0] - first_publish[0]
    stats = gateway.writer.stats
    ingest = gateway.normaliser.stats
    signals = vars(gateway.incidents.service.stats).copy()
    rules_backlog = gateway.rules.backlog
    await gateway.stop()
    from sqlalchemy import create_engine, func, select

    from gateway.storage import tables

    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(tables.events)).scalar_one()
        distinct = conn.execute(
            select(func.count(tables.events.c.event_id.distinct()))
        ).scalar_one()
    engine.dispose()
    latencies.sort()

    def pct(p: float) -> float:
        return (
            round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 2)
            if latencies
            else -1
        )

    return {
        "events": n,
        "stored": rows,
        "lost": n - distinct,
        "duplicates": rows - distinct,
        "redeliveries_ignored": stats.duplicates + ingest.duplicates,
        "quarantined": stats.quarantined,
        "events_per_s": round(rows / elapsed, 1) if elapsed > 0 else 0,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "batches": stats.batches,
        # CPU the gateway process spent per event while ingesting: less sensitive to other
        # load on the machine than events_per_s.
        "gateway_cpu_us_per_event": round(cpu_box[0] / n * 1e6, 1),
        "cpu_us_per_event_by_thread": threads_box,
        # The rest of the machine's budget: the load generator and the broker.
        "publisher_cpu_us_per_event": round(publisher_cpu / n * 1e6, 1),
        "broker_cpu_us_per_event": round(broker_cpu / n * 1e6, 1),
        "incident_signals": signals,
        "rules_backlog_at_end": rules_backlog,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--baseline-events", type=int, default=100_000)
    parser.add_argument(
        "--switch-interval-ms",
        type=float,
        default=0.5,
        help="sys.setswitchinterval, as `lianfang run`/`demo` set it (default 0.5 ms)",
    )
    parser.add_argument("--protocol", choices=["v5", "v311"], default="v5")
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy URL of the database to ingest into (default: SQLite in a temporary "
        "folder); for PostgreSQL a throw-away database is created on that server and dropped",
    )
    parser.add_argument(
        "--default-gc", action="store_true", help="Python's GC settings, not gateway/tuning.py's"
    )
    parser.add_argument(
        "--batch-size", type=int, help="database.batch_size (default: the gateway's default)"
    )
    parser.add_argument(
        "--batch-interval-ms",
        type=int,
        help="database.batch_interval_ms (default: the gateway's default)",
    )
    parser.add_argument(
        "--publisher",
        choices=["lean", "paho"],
        default="lean",
        help="load generator: pre-built packets (bench/lean_publisher.py) or paho per message",
    )
    parser.add_argument(
        "--publish", nargs=5, metavar=("PORT", "N", "SEED", "KIND", "RATE"), help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0,
        help="publish at this many events/s (lean publisher) instead of as fast as possible: "
        "shows whether the gateway sustains the rate (latency stays flat) or falls behind",
    )
    args = parser.parse_args()
    if args.publish:
        port, n, seed, kind, rate = args.publish
        publisher(int(port), int(n), int(seed), kind, float(rate))
        return
    global PUBLISHER
    PUBLISHER = args.publisher
    os.environ.setdefault("LIANFANG_PII_KEY", "bench-only-key")
    with tempfile.TemporaryDirectory(prefix="lianfang-bench-") as tmp:
        workdir = Path(tmp)
        broker = MosquittoBroker(workdir / "mosquitto")
        broker.workdir.mkdir()
        broker.start()
        try:
            baseline = broker_baseline(broker.port, args.baseline_events)
            via_aiomqtt = asyncio.run(aiomqtt_baseline(broker.port, args.baseline_events))
            broker.restart()  # fresh broker state for the gateway run
            assert broker.proc is not None
            with bench_database(args.database_url, workdir) as url:
                result = asyncio.run(
                    gateway_run(workdir, broker.port, args.events, args, broker.proc.pid, url)
                )
        finally:
            broker.stop()
    result["broker_events_per_s"] = round(baseline, 1)  # publisher → Mosquitto → bare paho
    result["broker_events_per_s_aiomqtt"] = round(via_aiomqtt, 1)  # same, through aiomqtt
    result["ratio_to_broker"] = round(result["events_per_s"] / baseline, 3) if baseline else None
    result["database"] = "sqlite" if args.database_url is None else args.database_url.split(":")[0]
    result["machine_cores"] = os.cpu_count()
    result["protocol"] = args.protocol
    result["gc"] = "default" if args.default_gc else "tuned"
    result["publisher"] = args.publisher
    result["publish_rate"] = args.rate or "full speed"
    result["batch_size"] = args.batch_size or "default"
    result["batch_interval_ms"] = args.batch_interval_ms or "default"
    result["calibration_ms"] = calibration_ms()

    print(json.dumps(result))


if __name__ == "__main__":
    main()
