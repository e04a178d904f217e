"""The bounded quarantine: rows sampled past a rate with bounded state, exact counts, log
lines deduplicated with a budget and summaries, the table capped in bytes (oldest rows go)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from device_adapters.registry import load_adapters
from gateway.config.settings import IngestConfig, load_gateway_config
from gateway.config.sites import DeviceConfig, SiteConfig, SiteRegistry
from gateway.events import DeviceKind
from gateway.incidents.tables import incidents
from gateway.ingest.pipeline import Normaliser, QuarantineRecord
from gateway.ingest.quarantine import LOGGED_PAIRS, QuarantineSampler
from gateway.ingest.reasons import Reason
from gateway.runtime import Gateway
from gateway.storage import tables
from gateway.storage.db import make_engine, migrate
from gateway.storage.writer import QUARANTINE_ROW_OVERHEAD, BatchWriter, WriteItem
from tests.conftest import postgres_database
from tests.support.brokers import MosquittoBroker
from tests.support.compound import Publisher
from tests.support.two_sites import SITE as TWO_SITES
from tests.support.two_sites import write_config

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 12, 4, 8, 0, 5, tzinfo=UTC)
SITE = "q-compound"
QLOG = "gateway.ingest.quarantine"


def quarantine_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == QLOG]


# -- the sampler ------------------------------------------------------------------------


def test_rows_are_kept_up_to_each_rate_and_every_message_is_counted() -> None:
    s = QuarantineSampler(per_source=3, per_reason=5, total=8)
    kept = [s.admit("malformed_json", "dev-a", T0) for _ in range(10)]
    assert kept == [True] * 3 + [False] * 7  # per source
    kept = [s.admit("malformed_json", f"dev-{i}", T0) for i in range(10)]
    assert kept.count(True) == 2  # per reason: 5 in all, 3 already taken by dev-a
    kept = [s.admit("no_profile", f"t/{i}", T0) for i in range(10)]
    assert kept.count(True) == 3  # all reasons: 8, 5 taken
    assert s.received == {"malformed_json": 20, "no_profile": 10}
    assert s.kept == {"malformed_json": 5, "no_profile": 3}
    assert s.dropped == {"malformed_json": 15, "no_profile": 7}
    # a new minute: the rates start again, the totals go on
    assert s.admit("malformed_json", "dev-a", T0 + timedelta(minutes=1))
    assert s.received["malformed_json"] == 21 and s.kept["malformed_json"] == 6


def test_counts_per_minute_are_drained_once() -> None:
    s = QuarantineSampler(per_source=1, per_reason=10, total=10)
    for i in range(5):
        s.admit("unknown_device", "ghost", T0 + timedelta(seconds=i))
    s.admit("unknown_device", "ghost", T0 + timedelta(minutes=1))
    s.keep_always("unknown_device", "ghost", T0 + timedelta(minutes=1))
    drained = {(c.minute, c.reason): (c.received, c.kept) for c in s.drain()}
    minute = T0.replace(second=0)
    assert drained == {
        (minute, "unknown_device"): (5, 1),
        (minute + timedelta(minutes=1), "unknown_device"): (2, 2),
    }
    assert s.drain() == [] and not s.has_pending


def test_a_storm_of_invented_ids_keeps_the_state_and_the_log_bounded(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=QLOG)
    s = QuarantineSampler(per_source=10, per_reason=100, total=200, log_lines=5)
    for i in range(50_000):
        s.admit("malformed_json", f"lianfang/x/ghost-{i}/event", T0 + timedelta(seconds=i // 1000))
    window = s._window
    assert len(window.by_source) <= 200 and len(s._logged) <= LOGGED_PAIRS
    assert sum(len(v) for v in window.sources.values()) <= 3
    assert s.received["malformed_json"] == 50_000
    assert s.kept["malformed_json"] == 100  # 50 s: one minute's worth
    lines = quarantine_lines(caplog)
    assert len(lines) == 5  # the budget of one minute; the summary comes when it closes
    s.tick(T0 + timedelta(minutes=1))
    summary = quarantine_lines(caplog)[5:]
    assert len(summary) == 1
    assert "50000 malformed_json messages, 100 kept as rows, 49900 over the row rate" in summary[0]
    assert "49995 new sources not logged" in summary[0]


def test_a_pair_is_logged_once_and_hostile_text_is_escaped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger=QLOG)
    s = QuarantineSampler(log_lines=5)
    for _ in range(3):
        s.admit("no_match", "dev\n2026-12-04 FAKE LINE", T0, "detail")
    lines = quarantine_lines(caplog)
    assert len(lines) == 1 and "\n" not in lines[0] and "'dev\\n2026" in lines[0]


# -- the writer: counts and the byte cap ------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with ExitStack() as stack:
        if request.param == "postgres":
            url = stack.enter_context(postgres_database())
        else:
            url = f"sqlite:///{tmp_path / 'q.db'}"
        eng = make_engine(url)
        stack.callback(eng.dispose)
        migrate(eng)
        yield eng


def record(n: int, size: int = 1000) -> QuarantineRecord:
    raw = bytes([65 + n % 26]) * size
    return QuarantineRecord(
        T0 + timedelta(seconds=n), "t/x", Reason.MALFORMED_JSON, "d", f"dev-{n}", raw, size
    )


def test_the_table_stays_under_its_byte_cap_oldest_rows_first(engine: Engine) -> None:
    per_row = 1000 + len("d") + len("t/x") + len("dev-00") + QUARANTINE_ROW_OVERHEAD
    cap = per_row * 20
    writer = BatchWriter(engine, interval_s=0.001, quarantine_max_bytes=cap)
    writer.start()
    for n in range(10, 110):
        writer.submit(WriteItem(quarantined=record(n)))
        if n % 10 == 0:
            writer.flush()
    writer.stop()
    q = tables.quarantine
    with engine.connect() as conn:
        ids = [r.device_id for r in conn.execute(select(q.c.device_id).order_by(q.c.id))]
        size = conn.execute(
            select(func.sum(func.length(q.c.raw) + func.length(q.c.detail) + 3 + 6 + 64))
        ).scalar_one()
    assert size <= cap
    assert ids == [f"dev-{n}" for n in range(110 - len(ids), 110)]  # the newest, in order
    assert len(ids) >= 15 and writer.stats.quarantine_evicted == 100 - len(ids)


def test_counts_are_stored_and_added_up(engine: Engine) -> None:
    sampler = QuarantineSampler(per_source=1, per_reason=100, total=100)
    writer = BatchWriter(engine, interval_s=0.001, quarantine_counts=sampler.drain)
    writer.start()
    for batch in range(3):
        for _ in range(7):
            sampler.admit("malformed_json", "same", T0 + timedelta(seconds=batch))
        writer.submit(WriteItem())
        writer.flush()
    writer.stop()
    c = tables.quarantine_counts
    with engine.connect() as conn:
        rows = conn.execute(select(c.c.minute, c.c.reason, c.c.received, c.c.kept)).all()
    assert [(r.reason, r.received, r.kept) for r in rows] == [("malformed_json", 21, 1)]
    assert rows[0].minute.replace(tzinfo=UTC) == T0.replace(second=0)


# -- the normaliser: a malformed storm ---------------------------------------------------


def normaliser(**limits: int) -> Normaliser:
    registry = SiteRegistry(
        [SiteConfig(id=SITE, devices=[DeviceConfig(id="panic-1", kind=DeviceKind.ALARM)])]
    )
    return Normaliser(
        load_adapters(ROOT / "config" / "profiles"),
        registry,
        IngestConfig(**limits),  # type: ignore[arg-type]
        clock=lambda: T0,
    )


def test_a_malformed_storm_for_unknown_ids_keeps_few_rows_and_counts_all() -> None:
    n = normaliser(quarantine_per_reason_per_minute=50, quarantine_per_minute=80)
    kept = 0
    for i in range(20_000):
        body = b'{"v": 1, "seq": ' if i % 2 else b'{"v": 1, "kind": "alarm", "type": "heartbeat"}'
        outcome = n.process(f"lianfang/{SITE}/ghost-{i}/event", body)
        assert not outcome.events
        kept += outcome.quarantined is not None
    assert n.stats.rejected == {"malformed_json": 10_000, "unknown_device": 10_000}
    assert kept == 80 == sum(n.quarantine.kept.values())
    assert n.quarantine.received == n.stats.rejected
    # the registered panic button in the middle of it is read as ever
    panic = n.process(
        f"lianfang/{SITE}/panic-1/event", b'{"v": 1, "seq": 1, "kind": "alarm", "type": "panic"}'
    )
    assert [e.type for e in panic.events] == ["panic"]


# -- through a running gateway ------------------------------------------------------------


@pytest.mark.broker
async def test_a_storm_through_the_gateway_is_counted_and_bounded_and_a_panic_in_it_raised(
    tmp_path: Path, mosquitto: MosquittoBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=QLOG)
    limits = {"quarantine_per_reason_per_minute": 50, "quarantine_per_minute": 80}
    gw = Gateway(load_gateway_config(write_config(tmp_path, mosquitto.port, limits)))
    await gw.start()
    try:
        assert await gw.wait_subscribed(15)
        pad = b"x" * 900
        storm = [
            (f"lianfang/{TWO_SITES}/ghost-{i}/event", b'{"v": 1, "p": "' + pad) for i in range(3000)
        ]
        panic = json.dumps({"v": 1, "seq": 7, "kind": "alarm", "type": "panic"}).encode()
        storm.insert(1500, (f"lianfang/{TWO_SITES}/panic-1/event", panic))
        pub = Publisher(mosquitto.port)
        try:
            await asyncio.to_thread(pub.publish, storm)
        finally:
            pub.close()
        deadline = asyncio.get_running_loop().time() + 30
        while gw.normaliser.stats.messages < len(storm):
            assert asyncio.get_running_loop().time() < deadline, gw.normaliser.stats
            await asyncio.sleep(0.05)
        while not incidents_of(gw, "panic_button"):  # the panic in the middle is raised
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
        sampler = gw.normaliser.quarantine
        assert sampler.received == {"malformed_json": 3000} == gw.normaliser.stats.rejected
        gw.writer.submit(WriteItem())  # carries the counts
        await asyncio.to_thread(gw.writer.flush)
        with gw.engine.connect() as conn:
            rows = conn.execute(select(func.count()).select_from(tables.quarantine)).scalar_one()
            counted = conn.execute(select(func.sum(tables.quarantine_counts.c.received))).scalar()
        assert rows == sampler.kept["malformed_json"] <= 80 * 2  # a minute may end inside
        assert counted == 3000
        assert gw.writer.stats.quarantined == rows  # the rest never reached the writer
        lines = quarantine_lines(caplog)
        assert len(lines) <= 5 * 2 + 1 * 2, lines  # the budget (and a summary) per minute
    finally:
        await gw.stop()


def incidents_of(gw: Gateway, rule_id: str) -> list[Any]:
    with gw.engine.connect() as conn:
        return list(conn.execute(select(incidents).where(incidents.c.rule_id == rule_id)))


def test_adapters_replaced_later_are_used_for_new_topics() -> None:
    # Profiles may be reloaded at run time: the first-level index follows the adapters.
    n = normaliser()
    assert n.process("zigbee2mqtt/x", b"{}").quarantined is not None
    n.replace_adapters([a for a in n.adapters if a.name != "zigbee2mqtt"])
    outcome = n.process("zigbee2mqtt/y", b'{"action": "emergency"}')
    assert outcome.quarantined is not None and outcome.quarantined.reason == "no_profile"
