"""GA/T 1400 record posts through the /VIID server, in process (ASGI), against the real batch
writer on SQLite: records per second and answer latency when every answer waits for its
commit (the receivers' rule), against a baseline measured in the same run where answers do not
wait (what a fire-and-forget server would do).

    .venv/bin/python bench/push_receivers.py --devices 20 --posts 50 --records 4

The last line is JSON: records_per_s, p50_ms, p95_ms, baseline_records_per_s,
baseline_p50_ms, ratio_to_baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.config.sites import DeviceConfig, SiteConfig, SiteRegistry
from gateway.receivers.gat1400 import routes as gat1400_routes
from gateway.receivers.gat1400.config import Gat1400Config
from gateway.receivers.gat1400.service import Gat1400Service
from gateway.receivers.httppush.intake import PushIntake
from gateway.storage.writer import WriteItem
from tests.receivers.push_harness import PASSWORD, PASSWORD_ENV, jpeg, stack

os.environ.setdefault("LIANFANG_PII_KEY", "bench-only-key")


class NoWaitIntake(PushIntake):
    """The baseline: queue the events for the writer and answer at once."""

    async def _store(self, items: list[WriteItem | None], fresh: Any, redelivered: Any) -> None:
        if fresh:
            self._publish(fresh)
        self._submit(items)


def registry(devices: int) -> SiteRegistry:
    ids = [f"3101080000119{i:07d}" for i in range(devices)]
    return SiteRegistry([SiteConfig(id="bench", devices=[
        DeviceConfig(id=d, kind="gate", profile="gat1400", password_env=PASSWORD_ENV) for d in ids
    ])])  # fmt: skip


async def run(
    tmp: Path, args: argparse.Namespace, intake_class: type[PushIntake]
) -> dict[str, float]:
    picture = base64.b64encode(jpeg(args.picture_bytes)).decode()
    # The production writer: up to 2,000 events or 200 ms per transaction.
    with stack(tmp, batch_size=2000, interval_s=0.2) as s:
        s.registry = registry(args.devices)
        intake = s.intake("gat1400")
        intake.__class__ = intake_class
        service = Gat1400Service(
            Gat1400Config(enabled=True), s.registry, intake, timezone="Asia/Shanghai"
        )
        app = FastAPI()
        app.include_router(gat1400_routes.router)
        app.state.gat1400 = service
        latencies: list[float] = []

        async def device(index: int) -> None:
            device_id = f"3101080000119{index:07d}"
            transport = httpx.ASGITransport(
                app=app, client=(f"10.0.{index // 250}.{index % 250 + 1}", 5000)
            )
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as http:
                await http.post("/VIID/System/Register", json={"RegisterObject": {"DeviceID": device_id}},
                                auth=httpx.DigestAuth(device_id, PASSWORD))  # fmt: skip
                for post in range(args.posts):
                    records = [
                        {"MotorVehicleID": f"{device_id}02{post:08d}{r:04d}".ljust(48, "0"), "DeviceID": device_id,
                         "HasPlate": "1", "PlateColor": "5", "PlateNo": f"沪A{post % 100000:05d}",
                         "PassTime": "20261122210300",
                         "SubImageList": {"SubImageInfoObject": [{"Type": "01", "Data": picture}]}}
                        for r in range(args.records)
                    ]  # fmt: skip
                    started = time.perf_counter()
                    answer = await http.post(
                        "/VIID/MotorVehicles", headers={"User-Identify": device_id},
                        json={"MotorVehicleListObject": {"MotorVehicleObject": records}},
                    )  # fmt: skip
                    latencies.append((time.perf_counter() - started) * 1000)
                    assert answer.status_code == 200, answer.text

        started = time.perf_counter()
        await asyncio.gather(*(device(i) for i in range(args.devices)))
        s.writer.flush()
        elapsed = time.perf_counter() - started
        stored = sum(1 for e in s.events() if e["type"] == "plate_read")
        assert stored == args.devices * args.posts * args.records, stored
        latencies.sort()
        return {
            "records_per_s": round(stored / elapsed, 1),
            "p50_ms": round(statistics.median(latencies), 1),
            "p95_ms": round(latencies[int(len(latencies) * 0.95) - 1], 1),
        }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--posts", type=int, default=25, help="posts per device")
    parser.add_argument("--records", type=int, default=4, help="records per post")
    parser.add_argument("--picture-bytes", type=int, default=20_000)
    args = parser.parse_args()
    os.environ[PASSWORD_ENV] = PASSWORD
    with tempfile.TemporaryDirectory() as tmp:
        baseline = asyncio.run(run(Path(tmp) / "baseline", args, NoWaitIntake))
        waiting = asyncio.run(run(Path(tmp) / "stored", args, PushIntake))
    result = {
        **waiting,
        "baseline_records_per_s": baseline["records_per_s"],
        "baseline_p50_ms": baseline["p50_ms"],
        "baseline_p95_ms": baseline["p95_ms"],
        "ratio_to_baseline": round(waiting["records_per_s"] / baseline["records_per_s"], 3),
        "devices": args.devices, "posts_per_device": args.posts, "records_per_post": args.records,
        "machine_cores": os.cpu_count(),
    }  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
