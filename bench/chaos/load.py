"""The load: a publisher process streaming the mixed traffic with panic presses, a police
desk listening for the notifications, and a prober that asks "is the gateway live again?".

Every message carries ``seq`` = its index in the run, so its event id is
``lianfang:<device>:<seq>``, unique in the run, and the publisher writes every id it sent.

Two publishers:
- ``paho`` (faults): a real client with a persistent session that reconnects and re-sends
  what the broker has not acknowledged, as a device would; it can set device clocks off
  (``--skew-s``) and flap devices' status (``--flap``).
- ``lean`` (storm): bench/lean_publisher.py, pre-built packets, a few µs a message, so 4,000
  events/s cost the shared machine little; it cannot survive a broker restart.

    python -m bench.chaos.load --port P --rate R --duration S --out summary.json [...]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench.chaos.site import FLAPPERS, PROBE, ROOT, button
from bench.ingest import SITE, payload

PUBLISHER_ID = "chaos-publisher"


def schedule(
    n: int, rate: float, panics_per_s: float, seed: int = 1
) -> list[tuple[str, dict[str, Any]]]:
    """(topic, body) for every message of a run: bench/ingest.py's mix, and a panic press
    from a fresh button every ``rate / panics_per_s`` messages."""
    rng = random.Random(seed)
    every = max(1, round(rate / panics_per_s)) if panics_per_s > 0 else 0
    out: list[tuple[str, dict[str, Any]]] = []
    presses = 0
    for i in range(n):
        if every and i % every == every // 2:
            device = button(presses)
            presses += 1
            body = {"v": 1, "seq": i, "kind": "alarm", "type": "panic", "attrs": {"battery": 90}}
            out.append((f"lianfang/{SITE}/{device}/event", body))
            continue
        topic, body = payload(rng, i)
        if body["type"] == "panic":  # ingest's odd alarm: a heartbeat here, presses are ours
            body = {"v": 1, "seq": i, "kind": "alarm", "type": "heartbeat", "attrs": {}}
        out.append((topic, body))
    return out


def event_id(topic: str, body: dict[str, Any]) -> str:
    return f"lianfang:{topic.split('/')[2]}:{body['seq']}"


def _flap(port: int, stop: threading.Event, counter: list[int]) -> None:
    """Doors 0..FLAPPERS-1 toggle online/offline ten times a second (retained, QoS 1)."""
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id="chaos-flapper"
    )
    client.max_inflight_messages_set(1000)
    client.reconnect_delay_set(0.1, 1)  # type: ignore[arg-type]  # paho sleeps floats
    client.connect("127.0.0.1", port)
    client.loop_start()
    state = False
    while not stop.is_set():
        state = not state
        for d in range(FLAPPERS):
            client.publish(
                f"lianfang/{SITE}/door-{d}/status",
                "online" if state else "offline",
                qos=1,
                retain=True,
            )
            counter[0] += 1
        time.sleep(0.1)
    time.sleep(1)
    client.disconnect()
    client.loop_stop()


def publish_paho(
    args: argparse.Namespace, messages: list[tuple[str, dict[str, Any]]]
) -> dict[str, Any]:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=PUBLISHER_ID,
        clean_session=False,
        protocol=mqtt.MQTTv311,
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.reconnect_delay_set(0.1, 1)  # type: ignore[arg-type]  # paho sleeps floats
    acked = [0]

    def on_publish(*_a: Any) -> None:  # one call per PUBACK (paho's network thread)
        acked[0] += 1

    client.on_publish = on_publish
    client.connect("127.0.0.1", args.port, keepalive=10)
    client.loop_start()
    stop_flap = threading.Event()
    flapped = [0]
    flapper = None
    if args.flap:
        flapper = threading.Thread(target=_flap, args=(args.port, stop_flap, flapped))
        flapper.start()
    panics: dict[str, float] = {}
    started = time.monotonic()
    for i, (topic, body) in enumerate(messages):
        ahead = started + i / args.rate - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
        now = time.time()
        if args.skew_s:
            # half the messages (panics too) a day fast, half a day slow
            fast = random.Random(i).random() < 0.5
            body = {**body, "ts": round(now + (args.skew_s if fast else -args.skew_s), 3)}
        else:
            body = {**body, "ts": round(now, 3)}
        if body["type"] == "panic":
            panics[event_id(topic, body)] = now
        # Published while the broker is away, a message waits in paho's queue (rc "not
        # connected") and goes out on the reconnect, with those not yet acknowledged.
        client.publish(topic, json.dumps(body, ensure_ascii=False), qos=1)
    stop_flap.set()
    deadline = time.monotonic() + args.ack_timeout_s
    while time.monotonic() < deadline and acked[0] < len(messages):
        time.sleep(0.2)
    unacked = max(0, len(messages) - acked[0])
    if flapper is not None:
        flapper.join()
    client.disconnect()
    client.loop_stop()
    return {"panics": panics, "unacked": unacked, "status_sent": flapped[0]}


def publish_lean(
    args: argparse.Namespace, messages: list[tuple[str, dict[str, Any]]]
) -> dict[str, Any]:
    from bench.lean_publisher import LeanPublisher, Template

    panic_index = {i: event_id(t, b) for i, (t, b) in enumerate(messages) if b["type"] == "panic"}
    panics: dict[str, float] = {}

    def on_sent(start: int, end: int, at: float) -> None:
        for i in range(start, end):
            if i in panic_index:
                panics[panic_index[i]] = at

    lean = LeanPublisher(args.port, PUBLISHER_ID, chunk=16)
    lean.publish_all([Template(t, b) for t, b in messages], rate=args.rate, on_sent=on_sent)
    acked = lean.wait_acked(len(messages), args.ack_timeout_s)
    lean.close()
    return {
        "panics": panics,
        "unacked": 0 if acked else len(messages) - lean.acked,
        "status_sent": 0,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--duration", type=float, required=True)
    parser.add_argument("--panics-per-s", type=float, default=5)
    parser.add_argument("--kind", choices=["paho", "lean"], default="paho")
    parser.add_argument("--skew-s", type=float, default=0)
    parser.add_argument("--flap", action="store_true")
    parser.add_argument("--ack-timeout-s", type=float, default=180)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    messages = schedule(int(args.rate * args.duration), args.rate, args.panics_per_s)
    ids = [event_id(t, b) for t, b in messages]
    result = (publish_lean if args.kind == "lean" else publish_paho)(args, messages)
    args.out.write_text(json.dumps({"ids": ids, **result}))


def spawn(
    port: int,
    out: Path,
    *,
    rate: float,
    duration: float,
    panics_per_s: float,
    kind: str = "paho",
    skew_s: float = 0,
    flap: bool = False,
) -> subprocess.Popen[bytes]:
    command = [
        sys.executable, "-m", "bench.chaos.load", "--port", str(port), "--rate", str(rate),
        "--duration", str(duration), "--panics-per-s", str(panics_per_s), "--kind", kind,
        "--skew-s", str(skew_s), "--out", str(out),
    ]  # fmt: skip
    if flap:
        command.append("--flap")
    return subprocess.Popen(command, cwd=ROOT)


@dataclass
class Desk:
    """The police desk: a subscriber on its notification topics. For each panic (by the
    first event id a notification lists): when the desk first heard of it (``arrivals``), how
    many "new" notifications came (``news``: more than one is a duplicate), and whether it was
    told before the incident was stored (``unstored``: occasion "unstored", ``stored: false``,
    sent while the database cannot store it)."""

    port: int
    arrivals: dict[str, float] = field(default_factory=dict)
    news: dict[str, int] = field(default_factory=dict)
    unstored: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ready = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id="chaos-desk"
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: ready.set()
        self.client.on_connect = lambda c, *_a: c.subscribe("lianfang/notify/police-desk/#", qos=1)
        self.client.reconnect_delay_set(0.1, 1)  # type: ignore[arg-type]  # paho sleeps floats
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()
        ready.wait(10)

    def _on_message(self, _c: Any, _u: Any, m: mqtt.MQTTMessage) -> None:
        now = time.time()
        try:
            data = json.loads(m.payload)
        except ValueError:
            return
        occasion = data.get("occasion")
        if occasion not in ("new", "unstored") or not data.get("event_ids"):
            return
        first = str(data["event_ids"][0])
        self.arrivals.setdefault(first, now)
        if occasion == "new":
            self.news[first] = self.news.get(first, 0) + 1
        else:
            self.unstored.setdefault(first, now)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Prober:
    """Publishes one probe event (from the registered probe device) and says when it is
    stored: the time from a recovery to the gateway storing new traffic again."""

    def __init__(self, port: int) -> None:
        self.seq = 0
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id="chaos-prober",
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        self.client.reconnect_delay_set(0.1, 1)  # type: ignore[arg-type]  # paho sleeps floats
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def send(self) -> str:
        self.seq += 1
        seq = int(time.time() * 1000) * 10 + self.seq % 10
        body = {"v": 1, "seq": seq, "kind": "access", "type": "heartbeat", "ts": time.time()}
        self.client.publish(f"lianfang/{SITE}/{PROBE}/event", json.dumps(body), qos=1)
        return f"lianfang:{PROBE}:{seq}"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


if __name__ == "__main__":
    main()
