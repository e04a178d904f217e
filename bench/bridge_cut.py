"""Edge → district bridge: cut the link for 30 s (the issue's figure) and count what arrives.

Two Mosquittos on loopback, the compound's configured with config/mosquitto/bridge-edge.conf
as shipped (its reconnection back-off included), joined through a TCP proxy this script
cuts; QoS 1 messages published on the compound's broker at ``--rate`` from 1 s before the
cut until 1 s after the link is back; a persistent QoS 1 subscriber on the district broker.
Prints one JSON object (``lost`` must be 0; ``duplicates`` are resends, which the district
gateway drops by event id). The suite runs the same scenario with a 3 s cut
(tests/test_mosquitto_bridge.py).

    python bench/bridge_cut.py [--cut-s 30] [--rate 200]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.bridge_cut import run_bridge_cut  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cut-s", type=float, default=30.0, help="how long the link is cut")
    parser.add_argument("--rate", type=float, default=200.0, help="messages/s on the edge")
    parser.add_argument(
        "--restart-timeout",
        default=None,
        help="override the bridge's restart_timeout (default: as shipped)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lianfang-bridge-") as tmp:
        result = run_bridge_cut(
            Path(tmp),
            cut_s=args.cut_s,
            rate=args.rate,
            restart_timeout=args.restart_timeout,
            deliver_timeout_s=120.0,
        )
    result["machine_cores"] = os.cpu_count()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
