"""Chaos bench: for each fault, the gateway as a real process (``lianfang run``) with
Mosquitto (the shipped durability settings) and its database, a mixed load with panic
presses, the fault injected mid-stream, recovery, drain, and a count by event id.
Not a test: run it by hand. Prints one JSON line last:

    {"faults": [{"fault": NAME, "sent": …, "stored": …, "lost": …, "duplicates": …,
                 "panics_sent": …, "panic_incidents": …, "duplicate_incidents": …,
                 "recovery_s": …, …}, …]}

    python bench/chaos.py [--faults gateway_kill,storm] [--rate 500] [--duration 60]
    python bench/chaos.py --database-url postgresql+psycopg://postgres@127.0.0.1/postgres

Faults: gateway_kill, broker_kill, database_outage, disk_full, notifier_outage, storm,
clock_skew, flapping (docs/chaos.md says what each does). For PostgreSQL a fresh database
is created per fault and dropped afterwards. disk_full mounts a tmpfs (needs root).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.chaos.faults import SCENARIOS
from bench.chaos.runner import Options, run_fault


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--faults", default=",".join(SCENARIOS), help="comma-separated names")
    parser.add_argument("--database-url", help="default: SQLite in the run's temporary folder")
    parser.add_argument("--rate", type=float, default=500, help="events/s of the mixed load")
    parser.add_argument("--storm-rate", type=float, default=4000, help="events/s in storm")
    parser.add_argument("--duration", type=float, default=60, help="seconds of load per fault")
    parser.add_argument("--panics-per-s", type=float, default=5)
    parser.add_argument(
        "--skew-s", type=float, default=86_400, help="clock_skew: device clocks off by this"
    )
    parser.add_argument(
        "--gateway-checkout",
        type=Path,
        help="run the gateway of another checkout (a branch's worktree) with this venv",
    )
    parser.add_argument("--keep", action="store_true", help="keep each run's logs in /tmp")
    args = parser.parse_args()
    names = [n.strip() for n in args.faults.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown fault(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    options = Options(
        args.database_url,
        args.rate,
        args.storm_rate,
        args.duration,
        args.panics_per_s,
        args.keep,
        args.skew_s,
        args.gateway_checkout.resolve() if args.gateway_checkout else None,
    )
    results = []
    for name in names:
        started = time.monotonic()
        try:
            result = run_fault(SCENARIOS[name], options)
        except Exception as exc:
            traceback.print_exc()
            result = {"fault": name, "error": f"{type(exc).__name__}: {exc}"}
        result["wall_s"] = round(time.monotonic() - started, 1)
        print(json.dumps(result, ensure_ascii=False), file=sys.stderr, flush=True)
        results.append(result)
    database = "sqlite" if args.database_url is None else args.database_url.split(":")[0]
    summary = {"faults": results, "database": database}
    if args.gateway_checkout:
        summary["gateway_checkout"] = str(args.gateway_checkout)
    print(json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()
