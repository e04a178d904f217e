"""Edge → district through the shipped Mosquitto bridge, with the link cut for a while.

Two Mosquittos on free loopback ports: the compound's (edge: the test brokers' persistence
settings plus config/mosquitto/bridge-edge.conf) and the district's, joined through a
``TcpProxy`` the scenario owns. A persistent QoS 1 subscriber on the district broker stands
in for the district cluster. A publisher sends QoS 1 messages on the edge at a steady rate
from before the cut until after the link is restored; every message must reach the
district subscriber, at least once (a bridge resends what was in flight when the link
dropped; Lianfang keeps one copy per event id). Used by tests/test_mosquitto_bridge.py (a
short cut) and bench/bridge_cut.py (30 s).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.brokers import MosquittoBroker
from tests.support.tcp_proxy import TcpProxy

BRIDGE_CONF = Path(__file__).resolve().parents[2] / "config" / "mosquitto" / "bridge-edge.conf"
SHIPPED_SITE = "baiyang-01"
STATE_TOPIC = "lianfang-bridge/{site}/state"


def edge_bridge_config(site: str, remote_port: int, restart_timeout: str | None = None) -> str:
    """The shipped bridge file for ``site`` pointing at 127.0.0.1:``remote_port``: TLS and
    the district account removed (the test brokers are plain and anonymous), the rest as
    shipped unless ``restart_timeout`` replaces the reconnection delays."""
    text = BRIDGE_CONF.read_text().replace(SHIPPED_SITE, site)
    text, n = re.subn(r"(?m)^address .*$", f"address 127.0.0.1:{remote_port}", text)
    assert n == 1, "bridge-edge.conf must have exactly one address line"
    text = re.sub(
        r"(?m)^(bridge_cafile|bridge_certfile|bridge_keyfile|bridge_tls_version|"
        r"bridge_insecure|remote_username|remote_password) .*\n",
        "",
        text,
    )
    if restart_timeout is not None:
        text = re.sub(r"(?m)^restart_timeout .*$", f"restart_timeout {restart_timeout}", text)
    return text


@dataclass
class EdgeBroker(MosquittoBroker):
    """The test broker with more configuration appended (here: the bridge)."""

    extra: str = ""

    def write_config(self) -> Path:
        conf = super().write_config()
        conf.write_text(conf.read_text() + "\n" + self.extra + "\n")
        return conf


class Collector:
    """A persistent QoS 1 MQTT client that counts what arrives, by payload ``seq``."""

    def __init__(self, port: int, client_id: str, topic: str) -> None:
        self.counts: Counter[int] = Counter()
        self.states: list[tuple[float, str]] = []  # bridge state messages (monotonic, payload)
        self.last_at = 0.0
        self._cond = threading.Condition()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
        )
        subscribed = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(topic, qos=1)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise TimeoutError(f"no SUBACK from the broker on port {port}")

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._cond:
            if msg.topic.startswith("lianfang-bridge/"):
                self.states.append((time.monotonic(), msg.payload.decode()))
            else:
                self.counts[int(json.loads(msg.payload)["seq"])] += 1
                self.last_at = time.monotonic()
            self._cond.notify_all()

    def wait_for(self, seqs: set[int], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not seqs <= self.counts.keys():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def wait_state(self, value: str, since: float, timeout_s: float) -> float | None:
        """When (monotonic) the bridge state ``value`` arrived after ``since``, or None."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for at, state in self.states:
                    if at >= since and state == value:
                        return at
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _publisher(port: int, site: str) -> mqtt.Client:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"edge-devices-{site}"
    )
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def run_bridge_cut(
    workdir: Path,
    *,
    cut_s: float,
    rate: float = 100.0,
    site: str = "edge-site-1",
    restart_timeout: str | None = "1",
    deliver_timeout_s: float = 30.0,
) -> dict[str, Any]:
    """Publish ``rate`` messages/s on the edge from 1 s before the cut until 1 s after the
    link is restored, the link being cut for ``cut_s`` seconds; wait for everything at the
    district. ``restart_timeout``: the bridge's reconnection delay ("1": retry every
    second, for a quick test; None: as shipped)."""
    district = MosquittoBroker(workdir / "district")
    district.workdir.mkdir(parents=True)
    district.start()
    proxy = TcpProxy(target=district.port)
    proxy.start()
    edge = EdgeBroker(workdir / "edge", extra=edge_bridge_config(site, proxy.port, restart_timeout))
    edge.workdir.mkdir(parents=True)
    collectors: list[Collector] = []
    publisher: mqtt.Client | None = None
    try:
        edge.start()
        # The district cluster's consumer (persistent session) and a watcher of the
        # bridge's state on the edge side.
        sink = Collector(district.port, "district-consumer", f"lianfang/{site}/#")
        collectors.append(sink)
        watch = Collector(edge.port, "edge-watch", STATE_TOPIC.format(site=site))
        collectors.append(watch)
        if watch.wait_state("1", 0.0, 20) is None:
            raise TimeoutError("the bridge never connected")
        publisher = _publisher(edge.port, site)
        sent: list[int] = []
        during_cut: list[int] = []
        phase = {"cut": False}
        stop = threading.Event()
        failures: list[str] = []

        def publish() -> None:
            assert publisher is not None
            started = time.monotonic()
            seq = 0
            while not stop.is_set():
                ahead = started + seq / rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                body = {"v": 1, "seq": seq, "kind": "access", "type": "heartbeat"}
                info = publisher.publish(
                    f"lianfang/{site}/door-{seq % 50}/event", json.dumps(body), qos=1
                )
                try:
                    info.wait_for_publish(10)  # the edge broker has it (PUBACK)
                except (RuntimeError, ValueError) as exc:
                    failures.append(f"seq {seq}: {exc}")
                    return
                if not info.is_published():
                    failures.append(f"seq {seq}: the edge broker did not acknowledge")
                    return
                sent.append(seq)
                if phase["cut"]:
                    during_cut.append(seq)
                seq += 1

        thread = threading.Thread(target=publish, name="edge-publisher")
        thread.start()
        time.sleep(1.0)
        cut_at = time.monotonic()
        phase["cut"] = True
        proxy.cut()
        down_at = watch.wait_state("0", cut_at, 10)
        time.sleep(max(0.0, cut_s - (time.monotonic() - cut_at)))
        phase["cut"] = False
        restored_at = time.monotonic()
        proxy.restore()
        up_at = watch.wait_state("1", restored_at, deliver_timeout_s)
        time.sleep(1.0)
        stop.set()
        thread.join(15)
        if failures:
            raise RuntimeError(f"publishing on the edge failed: {failures[0]}")
        arrived = sink.wait_for(set(sent), deliver_timeout_s)
        counts = sink.counts.copy()
        return {
            "cut_s": round(cut_s, 1),
            "rate": rate,
            "sent": len(sent),
            "sent_during_cut": len(during_cut),
            "received": sum(counts.values()),
            "distinct": len(counts.keys() & set(sent)),
            "lost": len(set(sent) - counts.keys()),
            "duplicates": sum(n - 1 for n in counts.values() if n > 1),
            "all_arrived": arrived,
            "bridge_down_seen_after_s": None if down_at is None else round(down_at - cut_at, 2),
            "bridge_up_after_restore_s": None if up_at is None else round(up_at - restored_at, 2),
            "last_message_after_restore_s": round(sink.last_at - restored_at, 2),
            "proxied_connections": proxy.connections,
            "restart_timeout": restart_timeout or "as shipped",
        }
    finally:
        for c in collectors:
            c.close()
        if publisher is not None:
            publisher.disconnect()
            publisher.loop_stop()
        edge.stop()
        proxy.close()
        district.stop()
