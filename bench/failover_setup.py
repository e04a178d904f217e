"""What bench/failover.py sets up: the broker with the shipped settings, the sites and grid,
the workers' configurations, and the traffic (deterministic, so the parent process knows
every event id the publisher process sends)."""

from __future__ import annotations

import getpass
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.brokers import MosquittoBroker

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_MOSQUITTO = ROOT / "config" / "mosquitto" / "mosquitto.conf"
PROFILE = "lianfang"  # the generic JSON profile: event id "lianfang:<device>:<seq>"
N_DOORS, N_GATES, N_CAMERAS, N_BUTTONS = 40, 2, 4, 120
BACKGROUND_SEQ, PRESS_SEQ, PROBE_SEQ = 1_000_000, 5_000_000, 9_000_000


def site_ids(n: int) -> list[str]:
    return [f"fo-{i:02d}" for i in range(n)]


def event_id(device: str, seq: int) -> str:
    return f"{PROFILE}:{device}:{seq}"


# --- the broker ---------------------------------------------------------------------------


def shipped_mosquitto_config(workdir: Path, port: int) -> str:
    """config/mosquitto/mosquitto.conf as shipped (persistence, queues, in-flight window,
    session expiry, TCP_NODELAY), on a plain anonymous loopback listener: the TLS listener,
    password file and ACL are the site's, not what this benchmark measures."""
    text = SHIPPED_MOSQUITTO.read_text()
    text = re.sub(
        r"listener 8883\n(?:(?:cafile|certfile|keyfile|tls_version|protocol) .*\n)*", "", text
    )
    text = text.replace("listener 1883 127.0.0.1", f"listener {port} 127.0.0.1")
    text = text.replace("allow_anonymous false", "allow_anonymous true")
    text = re.sub(r"(?m)^(password_file|acl_file) .*\n", "", text)
    text = text.replace("/var/lib/mosquitto/", f"{workdir}/")
    text = text.replace("log_dest syslog", f"log_dest file {workdir}/mosquitto.log")
    if "persistence true" not in text or "autosave_interval 1" not in text:
        raise SystemExit("config/mosquitto/mosquitto.conf no longer persists as expected")
    return text + f"\nuser {getpass.getuser()}\n"


@dataclass
class ShippedBroker(MosquittoBroker):
    def write_config(self) -> Path:
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(shipped_mosquitto_config(self.workdir, self.port))
        return conf


# --- sites, grid, workers ------------------------------------------------------------------


def site_file(site: str) -> dict[str, Any]:
    places = [{"id": "compound", "kind": "compound"}] + [
        {"id": f"u{i}", "kind": "unit", "parent": "compound"} for i in range(4)
    ]
    devices: list[dict[str, Any]] = [
        {"id": f"{site}-door-{i}", "kind": "access", "zone": f"z{i % 4}"} for i in range(N_DOORS)
    ]
    devices += [{"id": f"{site}-gate-{i}", "kind": "gate"} for i in range(N_GATES)]
    devices += [
        {"id": f"{site}-cam-{i}", "kind": "perimeter", "zone": f"z{i % 4}"}
        for i in range(N_CAMERAS)
    ]
    devices += [
        {"id": f"{site}-panic-{k}", "kind": "alarm", "household": f"h-{site}-{k}", "place": "u0"}
        for k in range(N_BUTTONS)
    ]
    return {"id": site, "name": f"切换压测小区{site}", "places": places, "devices": devices}


def grid_file(sites: list[str]) -> dict[str, Any]:
    return {
        "street_offices": [{"id": "st", "name": "压测街道"}],
        "communities": [{"id": "cm", "name": "压测社区", "street": "st"}],
        "cells": [
            {"id": f"cell-{s}", "name": f"压测网格{s}", "community": "cm", "sites": [s]}
            for s in sites
        ],
        "beats": [{"id": "beat-1", "name": "压测警务区", "cells": [f"cell-{s}" for s in sites]}],
        "neighbour_groups": [
            {"id": f"ng-{s}-{g}", "name": f"十户联防{s}-{g}", "cell": f"cell-{s}"}
            for s in sites
            for g in range(N_BUTTONS // 10)
        ],
        "households": [
            {"id": f"h-{s}-{k}", "site": s, "group": f"ng-{s}-{k // 10}"}
            for s in sites
            for k in range(N_BUTTONS)
        ],
        "people": [
            {
                "id": "w1",
                "name": "网格员",
                "roles": ["grid_worker"],
                "cells": [f"cell-{s}" for s in sites],
            },
            {"id": "d1", "name": "值班台", "roles": ["police_desk"], "beats": ["beat-1"]},
        ],
    }


def write_shared_files(workdir: Path, sites: list[str]) -> None:
    (workdir / "sites").mkdir()
    for s in sites:
        (workdir / "sites" / f"{s}.yaml").write_text(
            yaml.safe_dump(site_file(s), allow_unicode=True)
        )
    (workdir / "grid").mkdir()
    (workdir / "grid" / "grid.yaml").write_text(
        yaml.safe_dump(grid_file(sites), allow_unicode=True)
    )


def write_worker_config(
    workdir: Path,
    worker_id: str,
    *,
    broker_port: int,
    api_port: int,
    database_url: str,
    lease_ttl_s: float,
) -> Path:
    """One worker's lianfang.yaml: the shared database, broker, sites and data folder; its
    own worker id and API port."""
    path = workdir / f"{worker_id}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(workdir / "data"),
                "log_level": "warning",
                "mqtt": {
                    "host": "127.0.0.1",
                    "port": broker_port,
                    # one configuration for every worker: each site's MQTT session id is
                    # "<client_id>-site-<site>", and the next owner must resume the same one
                    "client_id": "failover",
                },
                "database": {"url": database_url},
                "cluster": {"enabled": True, "worker_id": worker_id, "lease_ttl_s": lease_ttl_s},
                "api": {"host": "127.0.0.1", "port": api_port},
                "profiles_dir": str(ROOT / "config" / "profiles"),
                "sites_dir": str(workdir / "sites"),
                "rules_dir": str(ROOT / "config" / "rules"),
                "routing_file": str(ROOT / "config" / "routing.yaml"),
                "grid_dir": str(workdir / "grid"),
            }
        )
    )
    return path


# --- traffic --------------------------------------------------------------------------------


def background(sites: list[str], n: int, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """``n`` ordinary events spread over the sites (heartbeats, doors, plates, perimeter), as
    (topic, body): the publisher process and the accounting build the same list."""
    rng = random.Random(seed)
    out: list[tuple[str, dict[str, Any]]] = []
    for i in range(n):
        site = sites[i % len(sites)]
        seq = BACKGROUND_SEQ + i
        r = rng.random()
        if r < 0.35:
            device = f"{site}-door-{rng.randrange(N_DOORS)}"
            body: dict[str, Any] = {"kind": "access", "type": "heartbeat", "attrs": {}}
        elif r < 0.8:
            device = f"{site}-door-{rng.randrange(N_DOORS)}"
            body = {
                "kind": "access",
                "type": "access_granted" if rng.random() < 0.9 else "access_denied",
                "attrs": {"card": f"{rng.randrange(10**9):010d}", "direction": "in"},
            }
        elif r < 0.97:
            device = f"{site}-gate-{rng.randrange(N_GATES)}"
            body = {
                "kind": "gate",
                "type": "plate_read",
                "attrs": {"plate": f"浙J{rng.randrange(100000):05d}", "plate_colour": "blue"},
            }
        else:
            device = f"{site}-cam-{rng.randrange(N_CAMERAS)}"
            body = {
                "kind": "perimeter",
                "type": "motion",
                "attrs": {"zone": f"z{rng.randrange(4)}", "label": "person", "confidence": 0.9},
            }
        out.append((f"lianfang/{site}/{device}/event", {"v": 1, "seq": seq, **body}))
    return out


def background_ids(traffic: list[tuple[str, dict[str, Any]]]) -> list[str]:
    return [event_id(topic.split("/")[2], body["seq"]) for topic, body in traffic]


def press(sites: list[str], k: int) -> tuple[str, str, dict[str, Any]]:
    """The k-th panic press: round-robin over the sites, a fresh button each time (one
    incident each: the panic rule groups by device). (topic, event id, body)."""
    site = sites[k % len(sites)]
    button = k // len(sites)
    if button >= N_BUTTONS:
        raise SystemExit(f"more presses than buttons: raise N_BUTTONS above {N_BUTTONS}")
    device = f"{site}-panic-{button}"
    seq = PRESS_SEQ + k
    body = {
        "v": 1,
        "seq": seq,
        "kind": "alarm",
        "type": "panic",
        "attrs": {"household": f"h-{site}-{button}"},
    }
    return f"lianfang/{site}/{device}/event", event_id(device, seq), body


def probe(site: str, i: int) -> tuple[str, str, dict[str, Any]]:
    """A heartbeat that shows a site's session is subscribed (stored: someone consumes it)."""
    device = f"{site}-door-0"
    seq = PROBE_SEQ + i
    body = {"v": 1, "seq": seq, "kind": "access", "type": "heartbeat", "attrs": {}}
    return f"lianfang/{site}/{device}/event", event_id(device, seq), body
