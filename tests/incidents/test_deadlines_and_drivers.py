"""Parts of issue #4 the other incident tests leave out: acknowledgement deadlines per
severity (P2 five minutes, P4 none), the shipped SMS/voice log driver end to end, receivers
resolved through the grid at send time (a staff change needs no routing change), and the
ranking endpoints with their CSV export."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.api.app import create_app
from gateway.bus import EventBus
from gateway.health import HealthReport
from gateway.incidents.queries import get_incident
from gateway.incidents.runtime import IncidentsRuntime
from gateway.notify.base import Message
from gateway.notify.sms import LogSmsDriver, SmsNotifier
from rules.model import Severity
from tests.incidents.helpers import (
    CONFIG,
    FakeClock,
    Recorder,
    door_signal,
    engine_at,
    panic_signal,
    registry,
    runtime,
)
from tests.support.auth import trusted
from tests.support.incidents_app import ROUTERS, with_incidents

PROPERTY = "person/p-property"
HEAD = "person/p-head-1"  # grid head of shifan-01, where door-b2u1 is


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[IncidentsRuntime]:
    r = runtime(tmp_path, FakeClock())
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


def recorder(r: IncidentsRuntime) -> Recorder:
    return r.dispatcher.notifiers["mqtt"]  # type: ignore[return-value]


async def detail(r: IncidentsRuntime, incident_id: int) -> dict[str, Any]:
    found = await r.service.run_db(get_incident, r.engine, incident_id)
    assert found is not None
    return found


async def advance(r: IncidentsRuntime, seconds: float) -> None:
    r.clock.advance(seconds)  # type: ignore[attr-defined]
    await r.dispatcher.tick()
    await r.dispatcher.drain()


async def test_a_p2_incident_escalates_after_five_minutes_not_sixty_seconds(
    rt: IncidentsRuntime,
) -> None:
    await rt.emit(door_signal(1))  # P2 access: the property manager, after group_wait 30 s
    await advance(rt, 30)
    told = recorder(rt).to(PROPERTY)
    assert told and told[0].payload["ack_required"] is True
    await advance(rt, 299)  # 329 s after the signal: the deadline is 30 s + 5 min
    assert not recorder(rt).to(HEAD)
    await advance(rt, 2)
    assert [m.payload["occasion"] for m in recorder(rt).to(HEAD)] == ["escalation"]
    inc = await detail(rt, told[0].incident_id)
    assert [e["data"]["from"] for e in inc["timeline"] if e["action"] == "escalate"] == [
        "property_manager"
    ]


async def test_a_p4_incident_has_no_deadline_and_never_escalates(rt: IncidentsRuntime) -> None:
    signal = door_signal(1).model_copy(update={"severity": Severity.P4})
    await rt.emit(signal)
    await advance(rt, 30)
    told = recorder(rt).to(PROPERTY)
    assert told and told[0].payload["ack_required"] is False
    await advance(rt, 24 * 3600)
    assert not recorder(rt).to(HEAD)
    inc = await detail(rt, told[0].incident_id)
    assert all(d["ack_deadline"] is None for d in inc["deliveries"])


async def test_the_shipped_sms_driver_logs_recipient_ids_never_numbers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    r = IncidentsRuntime(
        engine_at(tmp_path),
        EventBus(),
        registry(),
        config_dir=CONFIG,
        data_dir=tmp_path,
        mqtt=None,  # default notifiers: console, sms, voice (mqtt rows fail: no channel)
        clock=FakeClock(),
        rule_dir=CONFIG / "rules",
        tick_s=3600,
    )
    await r.start()
    try:
        with caplog.at_level(logging.INFO, logger="gateway.notify.sms"):
            await r.emit(panic_signal())
            await r.dispatcher.drain()
        assert [(mode, to) for mode, to, _ in r.sms.sent] == [("sms", "person/p-worker-4")]
        text = r.sms.sent[0][2]
        assert text.startswith("【联防】P1 一键报警") and "示范路88号" in text
        logged = [m for m in caplog.messages if m.startswith("sms to ")]
        assert logged == [f"sms to person/p-worker-4: {text}"]
        assert not any(re.search(r"1\d{10}", m) for m in caplog.messages)  # no phone numbers
        inc = await detail(r, 1)
        sms = [d for d in inc["deliveries"] if d["channel"] == "sms"]
        assert [d["status"] for d in sms] == ["sent"]
    finally:
        await r.stop()


async def test_voice_goes_through_the_same_driver() -> None:
    driver = LogSmsDriver()
    message = Message(
        1, 1, "voice", "person", "p-head-2", "网格长", {"severity": "P1", "title_zh": "一键报警"}
    )
    result = await SmsNotifier(driver, "voice").send(message)
    assert result.ok and driver.sent == [("voice", "person/p-head-2", "【联防】P1 一键报警")]


class _Stub:
    def __init__(self, r: IncidentsRuntime) -> None:
        self.engine = r.engine
        self.bus = r.bus

    def health(self) -> HealthReport:
        return HealthReport()  # type: ignore[call-arg]


@pytest.fixture
async def client(rt: IncidentsRuntime) -> AsyncIterator[httpx.AsyncClient]:
    app = with_incidents(trusted(create_app(_Stub(rt), extra_routers=ROUTERS)), rt)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


async def test_receivers_follow_a_staff_change_without_touching_the_routes(
    rt: IncidentsRuntime, client: httpx.AsyncClient
) -> None:
    answer = await client.put(
        "/api/grid/people/p-new",
        json={
            "id": "p-new",
            "name": "新网格员",
            "roles": ["grid_worker"],
            "cells": ["shifan-02-b6"],
        },
    )
    assert answer.status_code == 200
    await rt.emit(panic_signal())
    await rt.dispatcher.drain()
    told = {m.recipient for m in recorder(rt).messages}
    assert {"person/p-new", "person/p-worker-4"} <= told


async def test_ranking_endpoints_and_csv(rt: IncidentsRuntime, client: httpx.AsyncClient) -> None:
    for n in range(2):
        created = await client.post(
            "/api/incidents",
            json={"category": "dispute", "title_zh": f"纠纷{n}", "cell": "shifan-02"},
        )
        assert created.status_code == 201
    ranking = (await client.get("/api/stats/ranking?by=community&day=2026-05-12")).json()
    assert ranking["by"] == "community"
    assert [row["key"] for row in ranking["rows"]] == ["shifan"]
    assert ranking["rows"][0]["incidents"] == 2
    answer = await client.get("/api/stats/ranking.csv?by=community&day=2026-05-12")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert 'filename="ranking-community-2026-05.csv"' in answer.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [r["key"] for r in rows] == ["shifan"] and rows[0]["incidents"] == "2"
    bad = await client.get("/api/stats/ranking?by=street")
    assert bad.status_code == 422
