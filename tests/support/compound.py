"""A small test compound and publishers speaking the Lianfang device JSON."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[2]
SITE = "test-compound"
DOORS = [f"door-{i}" for i in range(1, 6)]
PANIC = "panic-1"


def write_site(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    devices: list[dict[str, Any]] = [{"id": d, "kind": "access", "zone": "north"} for d in DOORS]
    devices.append({"id": PANIC, "kind": "alarm", "household": "1-101"})
    path = directory / "test.yaml"
    path.write_text(
        yaml.safe_dump({"id": SITE, "name": "测试小区", "devices": devices}, allow_unicode=True)
    )
    return directory


def write_gateway_config(tmp: Path, port: int, *, client_id: str = "lianfang-test") -> Path:
    sites = write_site(tmp / "sites")
    config = {
        "data_dir": str(tmp / "data"),
        "mqtt": {
            "host": "127.0.0.1",
            "port": port,
            "client_id": client_id,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1,
        },
        "database": {"url": f"sqlite:///{tmp / 'data' / 'lianfang.db'}", "batch_interval_ms": 20},
        "profiles_dir": str(ROOT / "config" / "profiles"),
        "sites_dir": str(sites),
        "rules_dir": str(ROOT / "config" / "rules"),
        "routing_file": str(ROOT / "config" / "routing.yaml"),
        "grid_dir": str(tmp / "grid"),  # none: the shipped grid places the demo compound
    }
    path = tmp / "lianfang.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def event_payload(seq: int, device: str = "door-1", type_: str = "access_granted") -> bytes:
    kind = "alarm" if device.startswith("panic") else "access"
    return json.dumps({
        "v": 1, "seq": seq, "ts": "2026-11-22T10:00:00+08:00", "kind": kind, "type": type_,
        "attrs": {"door": "1-1"} if kind == "access" else {"household": "1-101"},
    }).encode()  # fmt: skip


def topic(device: str = "door-1") -> str:
    return f"lianfang/{SITE}/{device}/event"


class Publisher:
    """QoS 1 publisher that waits until the broker has acknowledged everything."""

    def __init__(self, port: int, client_id: str = "test-publisher") -> None:
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id
        )
        self.client.max_inflight_messages_set(1000)
        self.client.max_queued_messages_set(0)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def publish(self, items: Iterable[tuple[str, bytes]], *, pace: float = 0.0) -> int:
        infos = []
        for t, payload in items:
            infos.append(self.client.publish(t, payload, qos=1))
            if pace:
                time.sleep(pace)
        for info in infos:
            info.wait_for_publish(30)
        return len(infos)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish_in_thread(port: int, items: list[tuple[str, bytes]], pace: float) -> threading.Thread:
    def run() -> None:
        pub = Publisher(port, client_id="test-publisher-bg")
        try:
            pub.publish(items, pace=pace)
        finally:
            pub.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread
