"""Alarm latency: a panic press over MQTT → the police desk's MQTT notification, while
1,000 background events/s flow. Not a test: run it by hand.

Starts its own Mosquitto (``set_tcp_nodelay true``), runs the real gateway in-process
(``gateway.runtime.Gateway`` with SQLite, the default rules) with its incidents runtime wired
as in docs/incidents.md, a background publisher process at ``--rate`` events/s, and panic
presses from a separate thread (a fresh button each time, ``--presses`` per second). The
police desk is a plain paho subscriber on ``lianfang/notify/police-desk/#``; a local HTTP
server is the webhook receiver. Every notification is committed to the outbox before it is
sent. Prints one JSON object, with the time from the press to each hop inside the gateway
(``since_press_by_hop``: received and normalised, evaluated by the rules, incident stored).

    python bench/alarm_latency.py [--seconds 20] [--rate 1000] [--presses 5]
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.brokers import MosquittoBroker  # noqa: E402

SITE = "bench-compound"
N_DOORS, N_PANIC = 200, 2000


def site_config() -> dict[str, Any]:
    devices: list[dict[str, Any]] = [
        {"id": f"door-{i}", "kind": "access", "zone": f"z{i % 8}"} for i in range(N_DOORS)
    ]
    devices += [{"id": f"gate-{i}", "kind": "gate"} for i in range(4)]
    devices += [
        {"id": f"panic-{i}", "kind": "alarm", "household": f"h{i}", "place": f"u{i % 20}"}
        for i in range(N_PANIC)
    ]
    places = [{"id": "compound", "kind": "compound"}] + [
        {"id": f"u{i}", "kind": "unit", "parent": "compound"} for i in range(20)
    ]
    return {"id": SITE, "name": "压测小区", "places": places, "devices": devices}


def grid_config() -> dict[str, Any]:
    return {
        "street_offices": [{"id": "st", "name": "压测街道"}],
        "communities": [{"id": "cm", "name": "压测社区", "street": "st"}],
        "cells": [{"id": "cell-1", "name": "压测网格", "community": "cm", "sites": [SITE]}],
        "beats": [{"id": "beat-1", "name": "压测警务区", "cells": ["cell-1"]}],
        "neighbour_groups": [
            {"id": f"ng-{g}", "name": f"十户联防{g}", "cell": "cell-1"} for g in range(200)
        ],
        "households": [
            {"id": f"h{i}", "site": SITE, "group": f"ng-{i // 10}"} for i in range(N_PANIC)
        ],
        "people": [
            {"id": "w1", "name": "网格员", "roles": ["grid_worker"], "cells": ["cell-1"]},
            {"id": "h1", "name": "网格长", "roles": ["grid_head"], "cells": ["cell-1"]},
            {"id": "d1", "name": "值班台", "roles": ["police_desk"], "beats": ["beat-1"]},
        ],
    }


def background(port: int, rate: int, seconds: float, seed: int) -> None:
    """Separate process: ``rate`` ordinary events/s (heartbeats, door traffic, plates)."""
    rng = random.Random(seed)
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-bg")
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    start = time.perf_counter()
    sent = 0
    while (elapsed := time.perf_counter() - start) < seconds:
        due = int(elapsed * rate)
        while sent < due:
            r = rng.random()
            if r < 0.4:
                dev, body = (
                    f"door-{rng.randrange(N_DOORS)}",
                    {"kind": "access", "type": "heartbeat"},
                )
            elif r < 0.9:
                dev = f"door-{rng.randrange(N_DOORS)}"
                body = {
                    "kind": "access",
                    "type": "access_granted",
                    "attrs": {"card": f"{rng.randrange(10**9):010d}", "direction": "in"},
                }
            else:
                dev = f"gate-{rng.randrange(4)}"
                body = {
                    "kind": "gate",
                    "type": "plate_read",
                    "attrs": {"plate": f"浙J{rng.randrange(100000):05d}", "plate_colour": "blue"},
                }
            client.publish(
                f"lianfang/{SITE}/{dev}/event", json.dumps({"v": 1, "seq": sent, **body}), qos=1
            )
            sent += 1
        time.sleep(0.001)
    client.disconnect()
    client.loop_stop()


class Hook:
    """Local webhook receiver: records the arrival time per first event id."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                now = time.time()
                data = json.loads(body)
                if data.get("occasion") == "new" and data.get("event_ids"):
                    outer.arrivals.setdefault(data["event_ids"][0], now)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/alarm"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000, 2)


async def run(workdir: Path, port: int, args: argparse.Namespace) -> dict[str, Any]:
    from gateway.config.settings import load_gateway_config
    from gateway.runtime import Gateway

    hook = Hook()
    (workdir / "sites").mkdir()
    (workdir / "sites" / "bench.yaml").write_text(yaml.safe_dump(site_config(), allow_unicode=True))
    (workdir / "grid").mkdir()
    (workdir / "grid" / "grid.yaml").write_text(yaml.safe_dump(grid_config(), allow_unicode=True))
    routing = yaml.safe_load((ROOT / "config" / "routing.yaml").read_text())
    routing["webhooks"] = [{"name": "bench", "url": hook.url, "timeout_s": 2}]
    routing["receivers"].append(
        {
            "name": "desk-hook",
            "targets": ["police_desk"],
            "channels": ["webhook:bench"],
            "ack": False,
        }
    )
    for route in routing["route"]["routes"]:
        if route.get("name") == "panic":
            route["receivers"].append("desk-hook")
    (workdir / "routing.yaml").write_text(yaml.safe_dump(routing, allow_unicode=True))
    cfg_path = workdir / "lianfang.yaml"
    cfg_path.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(workdir / "data"),
                "mqtt": {"host": "127.0.0.1", "port": port, "client_id": "bench-gateway"},
                "database": {"url": f"sqlite:///{workdir / 'data' / 'bench.db'}"},
                "profiles_dir": str(ROOT / "config" / "profiles"),
                "sites_dir": str(workdir / "sites"),
                "rules_dir": str(ROOT / "config" / "rules"),
                "routing_file": str(workdir / "routing.yaml"),
                "grid_dir": str(workdir / "grid"),
                "log_level": "warning",
            }
        )
    )
    config = load_gateway_config(cfg_path)
    gateway = Gateway(config)  # with its incidents runtime: rules → incidents → notifiers
    await gateway.start()
    from gateway.tuning import tune_interpreter

    tune_interpreter(switch_interval_s=args.switch_interval_ms / 1000)  # as `lianfang run`
    assert await gateway.wait_subscribed(30)

    desk_arrivals: dict[str, float] = {}
    ready = threading.Event()
    # Each hop of a press, timed where the gateway already calls out: the receive thread
    # holds its acknowledgement (received and normalised), the rules have evaluated it, the
    # incident service has stored the incident it raised.
    hops: dict[str, dict[str, float]] = {"received": {}, "evaluated": {}, "stored": {}}
    hold, evaluated = gateway.ack_gate.hold, gateway.rules.on_evaluated

    def timed_hold(token: Any, event_ids: list[str]) -> bool:
        now = time.time()
        for event_id in event_ids:
            hops["received"].setdefault(event_id, now)
        return hold(token, event_ids)

    def timed_evaluated(event: Any, signals: list[Any]) -> None:
        if event.type == "panic":
            hops["evaluated"].setdefault(event.event_id, time.time())
        if evaluated is not None:
            evaluated(event, signals)

    stored = gateway.incidents.service.on_stored

    def timed_stored(signal: Any) -> None:
        now = time.time()
        for e in signal.events:
            if e.type == "panic":
                hops["stored"].setdefault(e.event_id, now)
        if stored is not None:
            stored(signal)

    gateway.ack_gate.hold = timed_hold  # type: ignore[method-assign]
    gateway.rules.on_evaluated = timed_evaluated
    gateway.incidents.service.on_stored = timed_stored

    def on_message(_c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        now = time.time()
        data = json.loads(m.payload)
        if data.get("occasion") == "new" and data.get("event_ids"):
            desk_arrivals.setdefault(data["event_ids"][0], now)

    desk = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-desk")
    desk.on_message = on_message
    desk.on_subscribe = lambda *_a: ready.set()
    desk.connect("127.0.0.1", port)
    desk.subscribe("lianfang/notify/police-desk/#", qos=1)
    desk.loop_start()
    ready.wait(10)

    bg = subprocess.Popen(  # noqa: ASYNC220 - starts once, before measuring
        [sys.executable, __file__, "--background", str(port), str(args.rate), str(args.seconds + 2)]
    )
    await asyncio.sleep(2)  # background traffic at full rate before the first press
    published: dict[str, float] = {}

    def presses() -> None:
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-panic"
        )
        client.connect("127.0.0.1", port)
        client.loop_start()
        n = int(args.seconds * args.presses)
        for k in range(min(n, N_PANIC)):
            event_id = f"lianfang:panic-{k}:{k}"
            body = json.dumps(
                {
                    "v": 1,
                    "seq": k,
                    "kind": "alarm",
                    "type": "panic",
                    "attrs": {"household": f"h{k}"},
                }
            )
            published[event_id] = time.time()
            client.publish(f"lianfang/{SITE}/panic-{k}/event", body, qos=1)
            time.sleep(1 / args.presses)
        client.disconnect()
        client.loop_stop()

    await asyncio.to_thread(presses)
    await asyncio.to_thread(bg.wait)
    await asyncio.sleep(2)
    desk.loop_stop()
    desk.disconnect()
    stored_events = gateway.writer.stats.stored
    await gateway.stop()
    hook.httpd.shutdown()
    lat = [desk_arrivals[e] - t for e, t in published.items() if e in desk_arrivals]
    hook_lat = [hook.arrivals[e] - t for e, t in published.items() if e in hook.arrivals]
    by_hop = {
        hop: {
            "p50_ms": pct([at[e] - t for e, t in published.items() if e in at], 0.50),
            "p99_ms": pct([at[e] - t for e, t in published.items() if e in at], 0.99),
        }
        for hop, at in hops.items()
    }
    return {
        "presses": len(published),
        "notified": len(lat),
        "p50_ms": pct(lat, 0.50),
        "p99_ms": pct(lat, 0.99),
        "max_ms": pct(lat, 1.0),
        "webhook_p50_ms": pct(hook_lat, 0.50),
        "webhook_p99_ms": pct(hook_lat, 0.99),
        "since_press_by_hop": by_hop,  # cumulative: publish → each hop
        "background_rate": args.rate,
        "events_stored": stored_events,
        "stored_before_send": True,
        "switch_interval_ms": round(sys.getswitchinterval() * 1000, 3),
        "machine_cores": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--presses", type=float, default=5)
    parser.add_argument(
        "--switch-interval-ms",
        type=float,
        default=0.5,
        help="sys.setswitchinterval for the gateway process (default 0.5 ms, as `lianfang run`)",
    )
    parser.add_argument("--background", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.background:
        background(
            int(args.background[0]), int(args.background[1]), float(args.background[2]), seed=1
        )
        return
    os.environ.setdefault("LIANFANG_PII_KEY", "bench-only-key")
    with tempfile.TemporaryDirectory(prefix="lianfang-alarm-") as tmp:
        workdir = Path(tmp)
        broker = MosquittoBroker(workdir / "mosquitto")
        broker.workdir.mkdir()
        broker.start()
        try:
            result = asyncio.run(run(workdir, broker.port, args))
        finally:
            broker.stop()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
