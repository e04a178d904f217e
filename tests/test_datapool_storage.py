"""PostgreSQL's partitioned events (migration 0007): a populated database migrates without
losing a row, the writer stores a redelivery once even when its occurred_at differs, new
partitions appear when needed, and retention drops whole partitions (keeping incident
evidence)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, func, insert, select, text

from gateway.events import DeviceKind, EventType
from gateway.incidents.tables import incidents
from gateway.retention import purge
from gateway.storage import partitions
from gateway.storage.db import MIGRATIONS, make_engine, migrate
from gateway.storage.tables import events
from gateway.storage.writer import BatchWriter, WriteItem
from tests.conftest import postgres_database
from tests.test_api import make_event

pytestmark = pytest.mark.postgres

NOW = datetime.now(UTC).replace(microsecond=0)


def _alembic(engine: Engine, action: str, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)


@pytest.fixture
def engine() -> Iterator[Engine]:
    with postgres_database() as url:
        eng = make_engine(url)
        try:
            yield eng
        finally:
            eng.dispose()


def _row(n: int, at: datetime, **extra: object) -> dict[str, object]:
    return {
        "event_id": f"old-{n}", "site": "s1", "device_id": f"door-{n % 7}", "kind": "access",
        "type": "access_granted", "occurred_at": at, "received_at": at,
        "attributes": {"card_ref": f"c{n % 5}"}, "source": "test", "raw": f"payload {n}",
        **extra,
    }  # fmt: skip


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one())


def test_a_populated_database_migrates_without_losing_a_row(engine: Engine) -> None:
    _alembic(engine, "upgrade", "0008")
    # two years of rows (older ones land in events_old), plus one from a clock in 1999
    times = [NOW - timedelta(hours=7 * n) for n in range(2500)]
    rows = [_row(n, t) for n, t in enumerate(times)]
    rows.append(_row(9999, datetime(1999, 1, 1, tzinfo=UTC)))
    with engine.begin() as conn:
        conn.execute(insert(events), rows)
        before = {
            r.event_id: (r.seq, r.occurred_at, r.attributes, r.raw)
            for r in conn.execute(select(events))
        }
        top_seq = max(seq for seq, *_ in before.values())

    _alembic(engine, "upgrade", "head")

    with engine.connect() as conn:
        assert partitions.is_partitioned(conn)
        parts = partitions.partitions(conn)
        after = {
            r.event_id: (r.seq, r.occurred_at, r.attributes, r.raw)
            for r in conn.execute(select(events))
        }
        keys = conn.exec_driver_sql("SELECT count(*) FROM event_keys").scalar_one()
    assert after == before  # every row, with its seq (cursors stay valid)
    assert keys == len(before)
    assert parts[0].name == partitions.OLD and parts[0].start is None
    live = parts[1:]
    assert all(a.end == b.start for a, b in zip(parts, live, strict=False))  # contiguous
    assert live[-1].end > NOW + timedelta(days=31)  # created ahead
    assert _count(engine, partitions.OLD) > 1  # the 1999 row and those past 13 months
    # new rows continue the old sequence
    w = BatchWriter(engine, batch_size=100, interval_s=0.001)
    w.start()
    try:
        w.submit(WriteItem([make_event(1, occurred_at=NOW)]))
        assert w.flush(30)
    finally:
        w.stop()
    with engine.connect() as conn:
        seq = conn.execute(select(events.c.seq).where(events.c.event_id == "e0001")).scalar_one()
    assert seq > top_seq

    _alembic(engine, "downgrade", "0008")
    with engine.connect() as conn:
        assert not partitions.is_partitioned(conn)
        back = {r.event_id: r.seq for r in conn.execute(select(events))}
    assert back == {**{k: v[0] for k, v in before.items()}, "e0001": seq}


def test_a_redelivery_is_stored_once_whatever_its_occurred_at(engine: Engine) -> None:
    migrate(engine)
    w = BatchWriter(engine, batch_size=1000, interval_s=0.05)
    w.start()
    try:
        first = make_event(1, occurred_at=NOW - timedelta(days=40))
        # a device without a clock: the redelivery's occurred_at is its own receipt time,
        # in another month's partition
        again = make_event(1, occurred_at=NOW)
        twin = make_event(2, occurred_at=NOW)
        w.submit_many([WriteItem([first, twin, twin])])  # a duplicate inside one batch too
        assert w.flush(30)
        w.submit(WriteItem([again, make_event(3, occurred_at=NOW)]))
        assert w.flush(30)
    finally:
        w.stop()
    with engine.connect() as conn:
        stored = {r.event_id: r.occurred_at for r in conn.execute(select(events))}
        seqs = [r.event_id for r in conn.execute(select(events).order_by(events.c.seq))]
    assert stored == {
        "e0001": first.occurred_at,
        "e0002": twin.occurred_at,
        "e0003": NOW,
    }
    assert seqs == ["e0001", "e0002", "e0003"]  # arrival order
    assert w.stats.stored == 3 and w.stats.duplicates == 2


def test_the_writer_stores_awkward_text_and_creates_partitions(engine: Engine) -> None:
    migrate(engine)
    far = NOW + timedelta(days=200)  # past the partitions created ahead
    awkward = "tab\there\nline\\back\rslash\x00nul 中文"
    events_in = [
        make_event(1, occurred_at=far).model_copy(update={"raw": awkward}),
        make_event(2, occurred_at=datetime(1990, 5, 1, tzinfo=UTC), device_id="d\tx"),
        make_event(
            3,
            kind=DeviceKind.GATE,
            type=EventType.PLATE_READ,
            attributes={"plate": '浙A\\"12345', "extra": {"k": "a\nb"}},
        ),
    ]
    w = BatchWriter(engine, batch_size=1000, interval_s=0.01)
    w.start()
    try:
        w.submit(WriteItem(events_in))
        assert w.flush(30)
    finally:
        w.stop()
    with engine.connect() as conn:
        rows = {r.event_id: r for r in conn.execute(select(events))}
        parts = partitions.partitions(conn)
        old = conn.exec_driver_sql(f"SELECT event_id FROM {partitions.OLD}").scalars().all()
    assert rows["e0001"].raw == awkward.replace("\x00", "\ufffd")
    assert rows["e0001"].occurred_at == far
    assert rows["e0002"].device_id == "d\tx"
    assert rows["e0003"].attributes == {"plate": '浙A\\"12345', "extra": {"k": "a\nb"}}
    assert old == ["e0002"]
    assert parts[-1].end > far and any(p.start and p.start <= far < p.end for p in parts)


def test_retention_drops_whole_partitions_and_keeps_incident_evidence(engine: Engine) -> None:
    migrate(engine)
    with engine.connect() as conn:
        parts = partitions.partitions(conn)
    oldest = parts[1]  # the first live partition (13 months back on a new database)
    assert oldest.start is not None
    inside = [oldest.start + timedelta(days=d, hours=1) for d in range(3)]
    w = BatchWriter(engine, batch_size=1000, interval_s=0.01)
    w.start()
    try:
        w.submit(
            WriteItem(
                [make_event(n, occurred_at=t) for n, t in enumerate(inside)]
                + [make_event(7, occurred_at=NOW - timedelta(days=1))]
            )
        )
        assert w.flush(30)
    finally:
        w.stop()
    with engine.begin() as conn:
        conn.execute(
            insert(incidents),
            [{"source": "rule", "category": "access", "severity": "P3", "title_zh": "t",
              "stage": "closed", "labels": {}, "event_ids": ["e0001"], "assignees": [],
              "opened_at": inside[1], "updated_at": inside[1]}],
        )  # fmt: skip

    result = purge(engine, days=30, now=NOW)

    with engine.connect() as conn:
        names = [p.name for p in partitions.partitions(conn)]
        left = set(conn.execute(select(events.c.event_id)).scalars())
        keys = set(conn.exec_driver_sql("SELECT event_id FROM event_keys").scalars())
        in_old = set(conn.exec_driver_sql(f"SELECT event_id FROM {partitions.OLD}").scalars())
    assert oldest.name not in names  # dropped whole
    assert left == {"e0001", "e0007"}  # the incident's evidence and the recent event
    assert in_old == {"e0001"}
    assert keys == {"e0001", "e0007"}  # the dropped range's ids are forgotten
    assert result.events == 2 and result.kept_for_incidents == 1
    # a second run drops nothing more: the partition holding the cutoff stays whole
    with engine.connect() as conn:
        assert all(p.end > NOW - timedelta(days=30) for p in partitions.partitions(conn)[1:])
    assert purge(engine, days=30, now=NOW).events == 0
    # the writer still finds a partition for a late event of the dropped month
    w = BatchWriter(engine, batch_size=10, interval_s=0.01)
    w.start()
    try:
        w.submit(WriteItem([make_event(9, occurred_at=inside[0])]))
        assert w.flush(30)
    finally:
        w.stop()
    with engine.connect() as conn:
        found = conn.execute(
            text(f"SELECT event_id FROM {partitions.OLD} WHERE event_id = 'e0009'")
        ).scalar()
        assert found == "e0009"
        assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 3


@pytest.mark.parametrize(
    ("field", "kind"), [("plate", "gate"), ("card_ref", "access"), ("person_ref", "access")]
)
def test_the_traces_use_their_indexes(engine: Engine, field: str, kind: str) -> None:
    """The JSON attribute is read with the expression the trace's index is built on, and the
    planner serves the trace from that index on every partition."""
    from gateway.api import district

    migrate(engine)
    stmt = (
        select(events.c.seq)
        .where(
            events.c.kind == kind,
            district.attribute(engine, field) == "x",  # type: ignore[arg-type]
            events.c.occurred_at >= NOW - timedelta(days=30),
        )
        .order_by(events.c.occurred_at.desc())
    )
    sql = stmt.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        conn.exec_driver_sql("SET enable_seqscan = off")
        plan = "\n".join(conn.exec_driver_sql(f"EXPLAIN {sql}").scalars())
    scans = [line for line in plan.splitlines() if "Scan" in line]
    assert scans and all("Index Scan" in line and "_expr_" in line for line in scans), plan
    assert f"Index Cond: (((attributes ->> '{field}'::text) = 'x'::text)" in plan, plan


def test_a_failed_batch_is_retried_and_nothing_is_acknowledged_before(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database error inside the COPY path is retried by the writer (its thread lives on),
    the temporary table rolled back with the first transaction is made again, and the
    acknowledgement waits for the commit."""
    import time

    from gateway.storage import postgres_writer

    migrate(engine)
    good = postgres_writer._INSERT
    monkeypatch.setattr(postgres_writer, "_INSERT", "SELECT * FROM no_such_table")
    acked: list[object] = []
    w = BatchWriter(engine, batch_size=100, interval_s=0.001)
    w.acknowledge = acked.extend
    w.start()
    try:
        w.submit(WriteItem([make_event(1, occurred_at=NOW)], ack="token-1"))
        deadline = time.monotonic() + 10
        while w.stats.errors < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert w.stats.errors >= 2 and acked == []  # failed twice, nothing acknowledged
        monkeypatch.setattr(postgres_writer, "_INSERT", good)
        assert w.flush(30)
    finally:
        w.stop()
    assert acked == ["token-1"]
    assert _count(engine, "events") == 1 and w.stats.stored == 1


def test_the_cockpit_counts_kept_by_the_writer_match_the_events(engine: Engine) -> None:
    """Hourly counts kept by the writer (redeliveries not counted) answer the same as the
    events themselves, for periods that do not start or end on the hour."""
    from gateway.api import district

    migrate(engine)
    base = NOW.replace(minute=0, second=0) - timedelta(days=2)
    batch = [
        make_event(n, site=f"s{n % 3}", occurred_at=base + timedelta(minutes=7 * n))
        for n in range(600)
    ]
    w = BatchWriter(engine, batch_size=250, interval_s=0.01)
    w.start()
    try:
        w.submit_many([WriteItem(batch[:300]), WriteItem(batch[300:])])
        w.submit(WriteItem(batch[:50]))  # redelivered: not counted again
        assert w.flush(30)
    finally:
        w.stop()
    since, until = base + timedelta(minutes=95), base + timedelta(hours=40, minutes=20)
    for bucket in ("hour", "day"):
        kept = district.site_counts(engine, ["s0", "s1"], since, until, bucket=bucket)  # type: ignore[arg-type]
        with engine.connect() as conn:
            raw = district._counted_from_events(engine, ["s0", "s1"], since, until)
        assert sum(c.count for c in kept) == sum(n for *_, n in raw)
        assert sum(c.count for c in kept) == sum(
            1 for e in batch if e.site in ("s0", "s1") and since <= e.occurred_at < until
        )
    hourly = district.site_counts(engine, ["s2"], base, base + timedelta(days=3))
    with engine.connect() as conn:
        counted = conn.exec_driver_sql("SELECT sum(n) FROM event_counts").scalar_one()
    assert counted == 600  # the redelivered 50 are not in it
    assert {c.kind for c in hourly} == {"access"}
    # retention forgets the counts of the hours it drops, with the rows
    purge(engine, days=1, now=NOW + timedelta(days=400))
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM event_counts").scalar_one() == 0
