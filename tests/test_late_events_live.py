"""The live gateway and ``lianfang rules test`` agree on a late event: a captured payload with
an old device time is stored, marked (``arrival_delay_s``), counted and skipped by the door
rule in both; a late panic still raises its incident."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from gateway.api import queries
from gateway.api.filters import EventFilter, PageRequest
from gateway.cli.main import app as lianfang
from gateway.config.settings import load_gateway_config
from gateway.incidents.tables import incidents
from gateway.runtime import Gateway
from tests.support.brokers import MosquittoBroker
from tests.support.compound import PANIC, ROOT, Publisher, topic, write_gateway_config

pytestmark = pytest.mark.broker
OLD = "2026-11-22T10:00:00+08:00"  # a capture, replayed today


def payload(seq: int, type_: str, kind: str) -> bytes:
    attrs = {"door": "1-1"} if kind == "access" else {"household": "1-101"}
    return json.dumps(
        {"v": 1, "seq": seq, "ts": OLD, "kind": kind, "type": type_, "attrs": attrs}
    ).encode()


async def test_live_gateway_and_rules_test_agree(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    config_path = write_gateway_config(tmp_path, mosquitto.port)
    config = load_gateway_config(config_path)
    gateway = Gateway(config)
    await gateway.start()
    try:
        assert await gateway.wait_subscribed(10)
        items = [
            (topic("door-1"), payload(1, "door_forced_open", "access")),
            (topic(PANIC), payload(2, "panic", "alarm")),
        ]
        await asyncio.to_thread(lambda: Publisher(mosquitto.port).publish(items))
        deadline = time.monotonic() + 20
        while gateway.rules.engine.counters.late < 2 or gateway.writer.stats.stored < 2:
            assert time.monotonic() < deadline, "timed out"
            await asyncio.sleep(0.05)
        assert await gateway.incidents.service.settled(10)
        await asyncio.to_thread(gateway.writer.flush)
        with gateway.engine.connect() as conn:
            raised = [r.category for r in conn.execute(select(incidents.c.category))]
        assert raised == ["panic"]  # the late door event raised nothing; the panic did
        page = queries.list_events(gateway.engine, EventFilter(), PageRequest(limit=10))
        door = next(e for e in page.items if e.type == "door_forced_open")
        assert door.arrival_delay_s > 86_400  # the mark the API and console show
    finally:
        await gateway.stop()

    # the same stored event through `rules test` with the gateway's configuration
    captured = tmp_path / "captured.jsonl"
    captured.write_text(
        json.dumps(
            {
                "event_id": door.event_id, "occurred_at": door.occurred_at.isoformat(),
                "received_at": door.received_at.isoformat(), "site": door.site,
                "device_id": door.device_id, "kind": door.kind, "type": door.type,
                "attributes": door.attributes,
            }
        ) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    rules = str(ROOT / "config" / "rules")
    tested = CliRunner().invoke(
        lianfang, ["rules", "test", rules, str(captured), "--config", str(config_path)]
    )
    assert tested.exit_code == 0, tested.output
    assert "door_forced_open" not in tested.stdout and "1 late event(s)" in tested.stderr
    on_purpose = CliRunner().invoke(
        lianfang, ["rules", "test", rules, str(captured), "--as-recorded"]
    )
    assert json.loads(on_purpose.stdout.splitlines()[0])["rule_id"] == "door_forced_open"
