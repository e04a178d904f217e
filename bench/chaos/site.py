"""The compound, grid, routing and gateway configuration a chaos run writes to its folder.

The routine devices and their message mix are bench/ingest.py's; on top, a fresh panic
button per press (so every press is its own incident), a probe device the bench uses to see
when the gateway is live again, and a police desk, grid worker (with a phone, for SMS) and
webhook so every panic reaches MQTT, the console, SMS and a webhook.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bench.ingest import SITE, devices

ROOT = Path(__file__).resolve().parents[2]
N_BUTTONS = 4000  # panic buttons: one press each in a run
PROBE = "probe-0"  # an access unit the bench publishes probes from
FLAPPERS = 20  # doors 0..19 toggle online/offline in the flapping fault
WEBHOOK = "chaos"


def button(k: int) -> str:
    return f"btn-{k}"


def site_config() -> dict[str, Any]:
    out = devices()
    out += [
        {"id": button(k), "kind": "alarm", "household": f"hb{k}", "place": f"u{k % 20}"}
        for k in range(N_BUTTONS)
    ]
    out.append({"id": PROBE, "kind": "access", "zone": "z0"})
    places = [{"id": "compound", "kind": "compound"}] + [
        {"id": f"u{i}", "kind": "unit", "parent": "compound"} for i in range(20)
    ]
    return {"id": SITE, "name": "故障演练小区", "places": places, "devices": out}


def grid_config() -> dict[str, Any]:
    return {
        "street_offices": [{"id": "st", "name": "演练街道"}],
        "communities": [{"id": "cm", "name": "演练社区", "street": "st"}],
        "cells": [{"id": "cell-1", "name": "演练网格", "community": "cm", "sites": [SITE]}],
        "beats": [{"id": "beat-1", "name": "演练警务区", "cells": ["cell-1"]}],
        "neighbour_groups": [{"id": "ng-1", "name": "十户联防", "cell": "cell-1"}],
        "households": [{"id": f"hb{k}", "site": SITE, "group": "ng-1"} for k in range(N_BUTTONS)],
        "people": [
            {
                "id": "w1",
                "name": "网格员",
                "phone": "13800000021",
                "roles": ["grid_worker"],
                "cells": ["cell-1"],
            },
            {"id": "d1", "name": "值班台", "roles": ["police_desk"], "beats": ["beat-1"]},
        ],
    }


def routing_config(webhook_url: str | None, root: Path = ROOT) -> dict[str, Any]:
    """The shipped routing; with a webhook URL, the police desk also gets each panic by
    webhook (as bench/alarm_latency.py does)."""
    routing = yaml.safe_load((root / "config" / "routing.yaml").read_text())
    if webhook_url is None:
        return dict(routing)
    routing["webhooks"] = [
        {"name": WEBHOOK, "url": webhook_url, "timeout_s": 2, "max_attempts": 6, "backoff_s": 1}
    ]
    routing["receivers"].append(
        {
            "name": "desk-hook",
            "targets": ["police_desk"],
            "channels": [f"webhook:{WEBHOOK}"],
            "ack": False,
        }
    )
    for route in routing["route"]["routes"]:
        if route.get("name") == "panic":
            route["receivers"].append("desk-hook")
    return dict(routing)


def write_gateway_config(
    workdir: Path,
    *,
    mqtt_port: int,
    api_port: int,
    database_url: str,
    data_dir: Path,
    webhook_url: str | None = None,
    sms_url: str | None = None,
    root: Path = ROOT,
) -> Path:
    """lianfang.yaml and its sites, grid and routing files in ``workdir``; profiles, rules
    and routing from the checkout at ``root``."""
    (workdir / "sites").mkdir(exist_ok=True)
    (workdir / "sites" / "chaos.yaml").write_text(yaml.safe_dump(site_config(), allow_unicode=True))
    (workdir / "grid").mkdir(exist_ok=True)
    (workdir / "grid" / "grid.yaml").write_text(yaml.safe_dump(grid_config(), allow_unicode=True))
    (workdir / "routing.yaml").write_text(
        yaml.safe_dump(routing_config(webhook_url, root), allow_unicode=True)
    )
    config: dict[str, Any] = {
        "data_dir": str(data_dir),
        "log_level": "warning",
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port, "client_id": "chaos-gateway"},
        "database": {"url": database_url},
        "api": {"host": "127.0.0.1", "port": api_port},
        "profiles_dir": str(root / "config" / "profiles"),
        "sites_dir": str(workdir / "sites"),
        "rules_dir": str(root / "config" / "rules"),
        "routing_file": str(workdir / "routing.yaml"),
        "grid_dir": str(workdir / "grid"),
    }
    if sms_url is not None:
        config["sms"] = {
            "driver": "http",
            "http": {"url": sms_url, "timeout_s": 2, "max_attempts": 6, "backoff_s": 1},
        }
    path = workdir / "lianfang.yaml"
    path.write_text(yaml.safe_dump(config, allow_unicode=True))
    return path
