"""Rules engine benchmark (not a test): 50 mixed rules, a realistic event mix, 10,000 devices.

Evaluation only: events are built before timing. Prints JSON with ``events_per_s``,
``p99_us`` per event and the peak memory of the engine's state. Times are CPU time of the
benchmark thread (the machine is often shared); ``events_per_s_wall`` is the wall-clock rate.

    .venv/bin/python bench/rules.py [--events 200000]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.events import Event  # noqa: E402
from rules.engine import Engine  # noqa: E402
from rules.loader import load_rules  # noqa: E402

T0 = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)
DEVICES = {"access": 3000, "gate": 200, "perimeter": 800, "alarm": 5000, "sensor": 1000}
MIX = [  # (kind, type, weight)
    ("access", "heartbeat", 14),
    ("gate", "heartbeat", 2),
    ("perimeter", "heartbeat", 6),
    ("alarm", "heartbeat", 15),
    ("sensor", "heartbeat", 8),
    ("access", "access_granted", 22),
    ("access", "access_denied", 4),
    ("access", "door_open", 5),
    ("access", "door_closed", 5),
    ("access", "door_forced_open", 0.3),
    ("gate", "plate_read", 8),
    ("gate", "vehicle_denied", 1),
    ("perimeter", "motion", 4),
    ("perimeter", "intrusion", 0.8),
    ("perimeter", "line_crossing", 0.6),
    ("perimeter", "video_loss", 0.05),
    ("access", "tamper", 0.05),
    ("alarm", "panic", 0.02),
    ("alarm", "panic_cancel", 0.01),
    ("alarm", "battery_low", 0.1),
]
EXTRA_RULES = """
  - id: gen_match_{i}
    severity: P3
    category: access
    title: {{zh: "规则{i}", en: "Rule {i}"}}
    condition:
      type: match
      when: {{kind: access, type: access_denied, attributes: {{door: door-{i}}}, device_id: [access-{i}]}}
  - id: gen_expr_{i}
    severity: P3
    category: intrusion
    title: {{zh: "规则{i}", en: "Rule {i}"}}
    condition:
      type: match
      when: {{kind: perimeter, type: motion, {site_filter}expr: "attributes.confidence is not None and attributes.confidence > 0.9{i} and zone == 'z{i}'"}}
  - id: gen_threshold_{i}
    severity: P3
    category: access
    title: {{zh: "规则{i}", en: "Rule {i}"}}
    condition:
      type: threshold
      when: {{kind: access, type: access_granted, site: [site-{i}]}}
      count: {count}
      window: 30s
      group_by: [device_id]
  - id: gen_sequence_{i}
    severity: P2
    category: intrusion
    title: {{zh: "规则{i}", en: "Rule {i}"}}
    condition:
      type: sequence
      steps: [{{kind: perimeter, type: motion}}, {{kind: access, type: door_forced_open}}]
      within: 30s
      group_by: [site, zone]
  - id: gen_duration_{i}
    severity: P4
    category: access
    title: {{zh: "规则{i}", en: "Rule {i}"}}
    condition:
      type: duration
      start: {{kind: access, type: door_open, site: [site-{i}]}}
      end: {{kind: access, type: door_closed}}
      for: {for_}s
      group_by: [device_id]
  - id: gen_absence_{i}
    severity: P4
    category: device-health
    title: {{zh: "规则{i}", en: "Rule {i}"}}
    condition:
      type: absence
      when: {{kind: sensor, site: [site-{i}]}}
      for: 10m
"""


def write_rules(tmp: Path) -> Path:
    src = ROOT / "config" / "rules"
    for p in src.rglob("*"):
        if p.is_file():
            target = tmp / p.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(p.read_bytes())
    plates = [f"浙A{n:05d}" for n in range(10_000)]
    (tmp / "watchlists" / "plates.txt").write_text("\n".join(plates), encoding="utf-8")
    # expressions run after the structured filters: one global, the others per site
    generated = "".join(
        EXTRA_RULES.format(
            i=i, count=5 + i, for_=60 + i, site_filter="" if i == 0 else f"site: [site-{i}], "
        )
        for i in range(6)
    )
    generated += "".join(
        EXTRA_RULES.split("  - id: gen_expr_")[0].format(i=i + 6) for i in range(2)
    )
    (tmp / "zz-generated.yaml").write_text("rules:" + generated, encoding="utf-8")
    return tmp


def make_events(n: int, seed: int = 7) -> list[Event]:
    rnd = random.Random(seed)
    kinds, types, weights = zip(*[(k, t, w) for k, t, w in MIX], strict=True)
    picks = rnd.choices(range(len(MIX)), weights=weights, k=n)
    out = []
    rate = 400.0  # events per simulated second
    for i, p in enumerate(picks):
        kind, typ = kinds[p], types[p]
        dev = rnd.randrange(DEVICES[kind])
        t = T0 + timedelta(seconds=i / rate + rnd.uniform(-2, 0))  # a little disorder
        site = f"site-{dev % 40}"
        attrs: dict[str, object] = {"zone": f"z{dev % 12}"}
        if kind == "access":
            attrs["door"] = f"door-{dev % 50}"
        elif kind == "gate":
            attrs["plate"] = f"浙A{rnd.randrange(200_000):05d}"
            attrs["confidence"] = round(rnd.random(), 2)
        elif kind == "perimeter":
            attrs["confidence"] = round(rnd.random(), 2)
            attrs["label"] = "person"
        elif kind == "alarm":
            attrs = {"household": f"h{dev}", "battery_pct": 100 - int(rnd.expovariate(0.2)) % 90}
        out.append(
            Event.model_validate(
                {
                    "event_id": f"ev{i}",
                    "occurred_at": t,
                    "received_at": t + timedelta(seconds=0.2),
                    "site": site,
                    "device_id": f"{kind}-{dev}",
                    "kind": kind,
                    "type": typ,
                    "attributes": attrs,
                }
            )
        )
    return out


def run(engine: Engine, events: list[Event], timed: bool) -> tuple[float, list[int], int]:
    """CPU seconds for the whole run (the machine may be shared), per-event CPU ns."""
    lat: list[int] = []
    signals = 0
    next_tick = events[0].received_at
    clock = time.thread_time_ns
    start = clock()
    for e in events:
        if e.received_at >= next_tick:
            signals += len(engine.advance(e.received_at))
            next_tick = e.received_at + timedelta(seconds=1)
        if timed:
            t0 = clock()
            signals += len(engine.process(e))
            lat.append(clock() - t0)
        else:
            signals += len(engine.process(e))
    return (clock() - start) / 1e9, lat, signals


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ruleset = load_rules(write_rules(Path(tmp)))
    events = make_events(args.events)
    gc.collect()
    gc.freeze()  # the pre-built events are input, not engine state: keep them out of GC scans
    # warm-up, then throughput, then latency, then memory: each on a fresh engine
    run(Engine(ruleset), events[:20_000], timed=False)
    wall = time.perf_counter()
    seconds, _, signals = run(Engine(ruleset), events, timed=False)
    wall = time.perf_counter() - wall
    _, lat, _ = run(Engine(ruleset), events, timed=True)
    lat.sort()
    tracemalloc.start()
    engine = Engine(ruleset)
    run(engine, events, timed=False)
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    tracked = sum(r.groups for r in engine.status())
    print(
        json.dumps(
            {
                "rules": len(ruleset.rules),
                "events": len(events),
                "devices": sum(DEVICES.values()),
                "events_per_s": round(len(events) / seconds),
                "events_per_s_wall": round(len(events) / wall),
                "load_avg_1m": round(os.getloadavg()[0], 2),
                "p50_us": round(lat[len(lat) // 2] / 1000, 2),
                "p99_us": round(lat[int(len(lat) * 0.99)] / 1000, 2),
                "max_us": round(lat[-1] / 1000, 1),
                "signals": signals,
                "late": engine.counters.late,
                "state_groups": tracked,
                "engine_state_mb": round(current / 2**20, 1),
                "peak_traced_mb": round(peak / 2**20, 1),
                "process_max_rss_mb": round(
                    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
