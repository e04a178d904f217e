"""A malformed storm: how much it grows the data folder, and how late a panic sent in the
middle of it is raised. Not a test: run it by hand.

Starts its own Mosquitto and runs the real gateway in-process (SQLite, the shipped profiles,
rules and routing, a grid whose police desk covers the bench compound). The police desk is a
plain paho subscriber on ``lianfang/notify/police-desk/#``. Then, in the same run:

1. baseline: ``--presses`` panic presses with nothing else going on;
2. storm: a separate process publishes ``--messages`` malformed messages (about 1 KB each,
   every one from a new, unknown device id: bad JSON, bad UTF-8, duplicated keys) as fast as
   QoS 1 allows, with a registered button's panic and an unregistered button's panic in the
   middle of the stream, on the same connection (behind half the storm in the broker's queue).
   ``--publisher lean`` writes pre-built packets (faster than any device); ``paho`` is a
   client library, as a device or a script would publish.

A panic is *raised* when its incident is stored (``stored_ms``) and the police desk has its
notification (``desk_ms``), both from the moment the broker routed the panic (seen by a
client subscribed to the panics' topics only, which no storm holds up). The data
folder is measured (file sizes) before and after the storm, once everything is committed.
With ``--unbounded`` the storm runs a second time against a fresh gateway whose quarantine
rates and cap are set out of reach: every row kept, as before the quarantine was bounded.

Prints one JSON object, last.

    python bench/quarantine_storm.py [--messages 20000] [--presses 5] [--unbounded]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.lean_publisher import LeanPublisher  # noqa: E402
from tests.support.brokers import MosquittoBroker  # noqa: E402

SITE = "storm-compound"
N_PANIC = 200
UNBOUNDED = {
    "quarantine_per_source_per_minute": 100_000,
    "quarantine_per_reason_per_minute": 1_000_000,
    "quarantine_per_minute": 1_000_000,
    "quarantine_max_bytes": 64 * 1024**3,
}


def panic_body(seq: int) -> bytes:
    return json.dumps({"v": 1, "seq": seq, "kind": "alarm", "type": "panic"}).encode()


def storm(n: int, seed: int) -> list[tuple[str, bytes]]:
    """n malformed messages, each from a new device id, about 1 KB each."""
    rng = random.Random(seed)
    out: list[tuple[str, bytes]] = []
    for i in range(n):
        pad = "x" * rng.randrange(800, 1100)
        topic = f"lianfang/{SITE}/ghost-{seed}-{i}/event"
        r = i % 5
        if r < 3:  # cut short: not JSON
            body = f'{{"v": 1, "seq": {i}, "kind": "alarm", "pad": "{pad}'.encode()
        elif r == 3:  # not UTF-8
            body = b'{"v": 1, "pad": "' + pad.encode() + b'\xff\xfe"}'
        else:  # a key twice
            body = f'{{"v": 1, "type": "panic", "type": null, "pad": "{pad}"}}'.encode()
        out.append((topic, body))
    return out


def publish_storm(port: int, n: int, seed: int, kind: str) -> None:
    """Separate process: the storm with two panics in the middle."""
    messages = storm(n, seed)
    middle = n // 2
    messages.insert(middle, (f"lianfang/{SITE}/panic-{seed}/event", panic_body(seed)))
    messages.insert(middle + 10, (f"lianfang/{SITE}/ghost-button-{seed}/event", panic_body(seed)))
    if kind == "lean":
        lean = LeanPublisher(port, f"storm-{seed}")
        lean.publish_raw(messages)
        if not lean.wait_acked(len(messages), 600):
            raise SystemExit(f"broker acknowledged only {lean.acked} of {len(messages)}")
        lean.close()
        return
    # a device-like client: paho, QoS 1, as fast as it goes
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"storm-{seed}"
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = [client.publish(topic, payload, qos=1) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(600)
    client.disconnect()
    client.loop_stop()


def write_config(workdir: Path, port: int, ingest: dict[str, Any]) -> Path:
    (workdir / "sites").mkdir(parents=True)
    devices = [{"id": f"panic-{i}", "kind": "alarm", "household": f"h{i}"} for i in range(N_PANIC)]
    (workdir / "sites" / "storm.yaml").write_text(
        yaml.safe_dump({"id": SITE, "name": "压测小区", "devices": devices}, allow_unicode=True)
    )
    (workdir / "grid").mkdir()
    grid = {
        "street_offices": [{"id": "st", "name": "压测街道"}],
        "communities": [{"id": "cm", "name": "压测社区", "street": "st"}],
        "cells": [{"id": "cell-1", "name": "压测网格", "community": "cm", "sites": [SITE]}],
        "beats": [{"id": "beat-1", "name": "压测警务区", "cells": ["cell-1"]}],
        "people": [{"id": "d1", "name": "值班台", "roles": ["police_desk"], "beats": ["beat-1"]}],
    }
    (workdir / "grid" / "grid.yaml").write_text(yaml.safe_dump(grid, allow_unicode=True))
    path = workdir / "lianfang.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(workdir / "data"),
                "mqtt": {"host": "127.0.0.1", "port": port, "client_id": "storm-gateway"},
                "database": {"url": f"sqlite:///{workdir / 'data' / 'storm.db'}"},
                "profiles_dir": str(ROOT / "config" / "profiles"),
                "sites_dir": str(workdir / "sites"),
                "rules_dir": str(ROOT / "config" / "rules"),
                "routing_file": str(ROOT / "config" / "routing.yaml"),
                "grid_dir": str(workdir / "grid"),
                "ingest": ingest,
                "log_level": "warning",
            }
        )
    )
    return path


def _cpu_s(stat: Path) -> float:
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def receive_thread_cpu_s(client_id: str) -> float:
    """CPU of this process's MQTT receive thread (paho's, named after the client id)."""
    ids = [t.native_id for t in threading.enumerate() if client_id in t.name]
    return sum(_cpu_s(Path(f"/proc/self/task/{i}/stat")) for i in ids if i is not None)


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


class Desk:
    """The police desk: arrival time of the first notification per event id."""

    def __init__(self, port: int) -> None:
        self.arrivals: dict[str, float] = {}
        ready = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id="storm-desk"
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: ready.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("lianfang/notify/police-desk/#", qos=1)
        self.client.loop_start()
        ready.wait(10)

    def _on_message(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        now = time.time()
        data = json.loads(m.payload)
        for event_id in data.get("event_ids") or []:
            self.arrivals.setdefault(event_id, now)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Observer:
    """A client subscribed to the two panics' topics only: it is not behind the storm, so
    the time it gets a panic is when the broker routed it (the publisher's clock would say
    when it was queued, or when the broker's acknowledgement was read, neither of which is
    when the broker had it)."""

    def __init__(self, port: int, topics: dict[str, str]) -> None:
        self.arrivals: dict[str, float] = {}
        self._names = {topic: name for name, topic in topics.items()}
        ready = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id="storm-observer"
        )
        self.client.on_message = lambda _c, _u, m: self.arrivals.setdefault(
            self._names.get(m.topic, m.topic), time.time()
        )
        self.client.on_subscribe = lambda *_a: ready.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([(t, 0) for t in topics.values()])
        self.client.loop_start()
        ready.wait(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def run_gateway(
    workdir: Path,
    port: int,
    broker_pid: int,
    args: argparse.Namespace,
    ingest: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    import logging

    from gateway.config.settings import load_gateway_config
    from gateway.runtime import Gateway
    from gateway.storage import tables

    lines = {"n": 0}

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines["n"] += 1

    counter = Count(logging.WARNING)
    logging.getLogger("gateway").addHandler(counter)
    logging.getLogger("gateway").propagate = False  # counted here, not printed
    gateway = Gateway(load_gateway_config(write_config(workdir, port, ingest)))
    await gateway.start()
    assert await gateway.wait_subscribed(30)
    stored_at: dict[str, float] = {}
    stored = gateway.incidents.service.on_stored

    def timed_stored(signal: Any) -> None:
        now = time.time()
        for e in signal.events:
            stored_at.setdefault(e.event_id, now)
        if stored is not None:
            stored(signal)

    gateway.incidents.service.on_stored = timed_stored
    desk = Desk(port)

    # 1. baseline: presses with nothing else going on
    presser = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="presser")
    presser.connect("127.0.0.1", port)
    presser.loop_start()
    baseline: list[tuple[str, float]] = []
    for k in range(args.presses):
        seq = 1000 + k
        sent = time.time()
        presser.publish(f"lianfang/{SITE}/panic-{k + 100}/event", panic_body(seq), qos=1)
        baseline.append((f"lianfang:panic-{k + 100}:{seq}", sent))
        await asyncio.sleep(0.3)
    presser.loop_stop()
    presser.disconnect()
    await asyncio.sleep(1.0)
    await asyncio.to_thread(gateway.writer.flush)
    data_dir = workdir / "data"
    before = folder_bytes(data_dir)
    received_before = gateway.normaliser.stats.messages
    lines_before = lines["n"]
    children_before = sum(os.times()[2:4])

    # 2. the storm, with two panics in the middle
    observer = Observer(
        port,
        {
            "registered": f"lianfang/{SITE}/panic-{seed}/event",
            "unregistered": f"lianfang/{SITE}/ghost-button-{seed}/event",
        },
    )
    receive_cpu = receive_thread_cpu_s("storm-gateway")
    broker_cpu = _cpu_s(Path(f"/proc/{broker_pid}/stat"))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--publish", str(port), str(args.messages), str(seed),
        args.publisher,
        stdout=subprocess.PIPE,
    )  # fmt: skip
    await proc.communicate()
    sent_at = observer.arrivals
    total = args.messages + 2
    deadline = time.monotonic() + 120
    while gateway.normaliser.stats.messages - received_before < total:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    storm_received = gateway.normaliser.stats.messages - received_before
    receive_cpu = receive_thread_cpu_s("storm-gateway") - receive_cpu
    broker_cpu = _cpu_s(Path(f"/proc/{broker_pid}/stat")) - broker_cpu
    publisher_cpu = sum(os.times()[2:4]) - children_before
    await asyncio.sleep(1.0)
    await asyncio.to_thread(gateway.writer.flush)
    gateway.writer._checkpoint()  # the WAL into the database, as the writer does each second
    after = folder_bytes(data_dir)
    with gateway.engine.connect() as conn:
        from sqlalchemy import func, select

        rows = conn.execute(select(func.count()).select_from(tables.quarantine)).scalar_one()
        raw_bytes = conn.execute(
            select(func.coalesce(func.sum(func.length(tables.quarantine.c.raw)), 0))
        ).scalar_one()
    registered_id = f"lianfang:panic-{seed}:{seed}"
    unregistered = [e for e in stored_at if e.startswith("unregistered:")]
    per_message = 1e6 / max(storm_received, 1)
    result = {
        "storm_messages_received": storm_received,
        # CPU per storm message: the gateway keeps up while its receive thread costs no more
        # than the broker and the publisher together (each has a core of its own at best)
        "receive_thread_us": round(receive_cpu * per_message, 1),
        "broker_us": round(broker_cpu * per_message, 1),
        "publisher_us": round(publisher_cpu * per_message, 1),
        "data_growth_mb": round((after - before) / 1e6, 2),
        "quarantine_rows": rows,
        "quarantine_raw_mb": round(int(raw_bytes) / 1e6, 2),
        "rejected_counted": sum(gateway.normaliser.stats.rejected.values()),
        "warning_lines": lines["n"] - lines_before,
        "panic_stored_ms": ms(stored_at[registered_id] - sent_at["registered"])
        if registered_id in stored_at
        else None,
        "panic_desk_ms": ms(desk.arrivals[registered_id] - sent_at["registered"])
        if registered_id in desk.arrivals
        else None,
        "unregistered_panic_stored_ms": ms(stored_at[unregistered[-1]] - sent_at["unregistered"])
        if unregistered
        else None,
        "baseline_panic_stored_ms": [
            ms(stored_at[e] - t) if e in stored_at else None for e, t in baseline
        ],
        "baseline_panic_desk_ms": [
            ms(desk.arrivals[e] - t) if e in desk.arrivals else None for e, t in baseline
        ],
    }
    desk.close()
    observer.close()
    await gateway.stop()
    logging.getLogger("gateway").removeHandler(counter)
    return result


def calibration_ms() -> float:
    from bench.ingest import calibration_ms as calibrate

    return calibrate()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--presses", type=int, default=5)
    parser.add_argument("--unbounded", action="store_true", help="also run with rates unbounded")
    parser.add_argument(
        "--publisher",
        choices=["lean", "paho"],
        default="lean",
        help="lean: pre-built packets, as fast as the broker takes them; paho: a client library",
    )
    parser.add_argument("--publish", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish:
        port, n, seed, kind = args.publish
        publish_storm(int(port), int(n), int(seed), kind)
        return
    os.environ.setdefault("LIANFANG_PII_KEY", "bench-only-key")
    import logging

    logging.basicConfig(level=logging.ERROR)
    logging.getLogger("gateway").setLevel(logging.WARNING)  # counted, not printed
    result: dict[str, Any] = {"messages": args.messages, "publisher": args.publisher}
    with tempfile.TemporaryDirectory(prefix="lianfang-storm-") as tmp:
        broker = MosquittoBroker(Path(tmp) / "mosquitto")
        broker.workdir.mkdir()
        broker.start()
        assert broker.proc is not None
        pid = broker.proc.pid
        try:
            result["bounded"] = asyncio.run(
                run_gateway(Path(tmp) / "bounded", broker.port, pid, args, {}, seed=1)
            )
            if args.unbounded:
                result["unbounded"] = asyncio.run(
                    run_gateway(Path(tmp) / "unbounded", broker.port, pid, args, UNBOUNDED, seed=2)
                )
        finally:
            broker.stop()
    bounded = result["bounded"]
    result["data_growth_mb"] = bounded["data_growth_mb"]
    result["panic_raised_ms"] = bounded["panic_desk_ms"]
    result["calibration_ms"] = calibration_ms()
    result["machine_cores"] = os.cpu_count()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
