"""CPU per message of each ingest stage, one at a time, on the ingest benchmark's mix.

The ingest benchmark measures the whole gateway with threads competing for the GIL; this
one runs each stage alone in one thread and divides its CPU time by the message count, so a
change to one stage can be compared before/after without the noise of the others:

- ``paho_v5`` / ``paho_v311``: paho receiving QoS 1 PUBLISH packets from a loopback socket
  fed by a fake broker thread (pre-built packets, so the feeder costs little), with an empty
  ``on_message`` and manual acknowledgement: paho's own cost per message;
- ``paho_*_lean``: the same with ``BufferedReadClient.on_incoming_publish``, the path the
  gateway takes for plain PUBLISH packets;
- ``decode``: ``decode_payload`` alone (orjson and its checks; part of ``normalise``);
- ``normalise``: ``Normaliser.process`` (decode, profile, pydantic validation);
- ``submit``: ``BatchWriter.submit`` (row encoding and device state);
- ``write``: the writer's SQLite transaction for batches of 500;
- ``rules``: the rules engine over the events, as ``RulesService.handle`` runs it.

Prints one JSON object (µs of CPU per message). Not a test.

    python bench/stages.py [--messages 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import calibration_ms, payload, tune, write_config  # noqa: E402
from bench.lean_publisher import Template, _remaining_length  # noqa: E402
from gateway.ingest.paho_client import BufferedReadClient  # noqa: E402


def _thread_cpu_s(native_id: int) -> float:
    fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def paho_stage(
    messages: list[tuple[str, dict[str, Any]]],
    protocol: str,
    client_class: type[mqtt.Client],
    lean: bool = False,
) -> float:
    """µs of paho-thread CPU per message for QoS 1 delivery with an empty callback."""
    v5 = protocol == "v5"
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    templates = [Template(t, body) for t, body in messages]
    n = len(templates)

    def broker() -> None:
        conn, _ = server.accept()
        conn.recv(65536)  # CONNECT
        conn.sendall(b"\x20\x03\x00\x00\x00" if v5 else b"\x20\x02\x00\x00")
        conn.recv(65536)  # SUBSCRIBE
        ts = f"{time.time():.6f}".encode()
        chunk: list[bytes] = []
        for i, template in enumerate(templates):
            packet = template.packet(i % 65_535 + 1, ts)
            if v5:  # v5 PUBLISH: a properties length (0) after the packet id
                rest = packet[1 + len(_remaining_length(len(packet))) :]
                cut = len(template.head) + 2
                body = rest[:cut] + b"\x00" + rest[cut:]
                packet = b"\x32" + _remaining_length(len(body)) + body
            chunk.append(packet)
            if len(chunk) == 256:
                conn.sendall(b"".join(chunk))
                chunk.clear()
        conn.sendall(b"".join(chunk))
        time.sleep(60)  # keep the socket open; the daemon thread ends with the process
        conn.close()

    threading.Thread(target=broker, daemon=True).start()
    got = 0
    done = threading.Event()
    started: list[float] = []

    def on_message(_c: Any, _u: Any, _m: Any) -> None:
        nonlocal got
        if not started:
            started.append(_thread_cpu_s(threading.get_native_id()))
        got += 1
        if got == n:
            started.append(_thread_cpu_s(threading.get_native_id()))
            done.set()

    client = client_class(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="stages",
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        manual_ack=True,
    )
    client.on_message = on_message
    if lean:
        assert isinstance(client, BufferedReadClient)
        client.on_incoming_publish = lambda *_: on_message(None, None, None)
    client.on_connect = lambda c, *_: c.subscribe("#", qos=1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    if not done.wait(300):
        raise SystemExit(f"paho received {got} of {n}")
    client.loop_stop()
    server.close()
    return (started[1] - started[0]) / n * 1e6


async def pipeline_stages(
    workdir: Path, messages: list[tuple[str, dict[str, Any]]]
) -> dict[str, float]:
    from gateway.config.settings import load_gateway_config
    from gateway.ingest.decode import decode_payload
    from gateway.ingest.pipeline import Outcome
    from gateway.runtime import Gateway
    from gateway.storage.db import migrate
    from gateway.storage.writer import WriteItem

    gateway = Gateway(load_gateway_config(write_config(workdir, port=1)))
    migrate(gateway.engine)
    raw = [(t, json.dumps({**body, "ts": time.time()}).encode()) for t, body in messages]
    n = len(raw)
    out: dict[str, float] = {}

    limits = gateway.config.ingest
    started = time.process_time()
    for _, p in raw:
        decode_payload(
            p, "json", max_bytes=limits.max_payload_bytes, max_depth=limits.max_json_depth
        )
    out["decode"] = time.process_time() - started

    started = time.process_time()
    outcomes: list[Outcome] = [gateway.normaliser.process(t, p) for t, p in raw]
    out["normalise"] = time.process_time() - started

    writer = gateway.writer
    items = [WriteItem(o.events, o.quarantined, None) for o in outcomes]
    started = time.process_time()
    for item in items:
        writer.submit(item)
    out["submit"] = time.process_time() - started
    writer._queue.clear()

    started = time.process_time()
    for i in range(0, n, 500):
        writer._write(items[i : i + 500], {})
    out["write"] = time.process_time() - started

    events = [e for o in outcomes for e in o.events]
    engine = gateway.rules.engine
    started = time.process_time()
    for event in events:
        engine.process(event)
    out["rules"] = time.process_time() - started
    return {k: round(v / n * 1e6, 1) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--switch-interval-ms", type=float, default=0.5)
    parser.add_argument("--default-gc", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("LIANFANG_PII_KEY", "bench-only-key")
    rng = random.Random(7)
    messages = [payload(rng, i) for i in range(args.messages)]
    tune(args)
    result: dict[str, Any] = {"messages": args.messages}
    for protocol in ("v5", "v311"):
        for name, cls in (("plain", mqtt.Client), ("buffered", BufferedReadClient)):
            result[f"paho_{protocol}_{name}"] = round(paho_stage(messages, protocol, cls), 1)
        lean = paho_stage(messages, protocol, BufferedReadClient, lean=True)
        result[f"paho_{protocol}_lean"] = round(lean, 1)
    with tempfile.TemporaryDirectory(prefix="lianfang-stages-") as tmp:
        result.update(asyncio.run(pipeline_stages(Path(tmp), messages)))
    result["calibration_ms"] = calibration_ms()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
