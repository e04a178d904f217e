"""District data-pool benchmark: N synthetic events of a district in PostgreSQL, then the
district's questions timed with random keys.

Creates a fresh database on the server of ``--database-url`` (dropped at the end unless
``--keep``), brings it to the newest revision with the project's migrations (partitioned
``events``, ``event_keys``, the indexes of docs/datapool.md), and loads N events with COPY
into the project's tables: 80 compounds with 3,200 doors, 200 gates, 400 perimeter cameras
and 10,000 panic homes; access swipes by recurring residents (keyed-hash card references,
as the adapters store them), plate reads of recurring resident cars and one-off visitors,
perimeter events, heartbeats, the odd panic; in time order over ``N / --per-day`` days
ending now (5M rows: 33 days). Then VACUUM ANALYZE (what autovacuum does to an insert-only table), and each
question through the project's own query functions (``gateway.api.district``), 60 times
with random keys:

- plate trace: a resident car across every compound's gates, last 30 days, first page;
- person trace: a resident's card across the doors, last 30 days, first page;
- device day: one door's events of one local day, first page;
- site month counts: one compound's events per hour and kind over 30 days (the cockpit),
  from the hourly counts the writer keeps, and for comparison from the events themselves.

Prints one JSON line last. The baseline in the same run is the load itself (rows/s) and the
targets of issue 15 (5M rows: traces p95 ≤ 100 ms, a device's day ≤ 50 ms, a compound's
month of counts ≤ 200 ms).

    python bench/datapool.py --rows 5000000 [--period month|week] [--per-day 150000]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from queue import Queue
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LIANFANG_PII_KEY", "bench-only-key")

from sqlalchemy import Engine, create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from gateway.api import district  # noqa: E402
from gateway.privacy import mask_tail, pseudonymise  # noqa: E402
from gateway.storage import partitions  # noqa: E402
from gateway.storage.db import make_engine, migrate  # noqa: E402

COUNT_EVENTS_BY_HOUR = (
    "SELECT site, timezone('UTC', date_trunc('hour', timezone('UTC', occurred_at))), kind,"
    " count(*) FROM events GROUP BY 1, 2, 3"
)

SITES, DOORS, GATES, CAMERAS, HOMES = 80, 3200, 200, 400, 10_000
RESIDENT_CARS, RESIDENTS = 12_000, 60_000  # about 2 plate reads and 1.4 swipes a day each
TZ = "Asia/Shanghai"
ZONE = ZoneInfo(TZ)
REPEATS = 60
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"


@contextmanager
def fresh_database(url: str, keep: bool) -> Iterator[str]:
    parsed = make_url(url)
    name = f"lianfang_datapool_{uuid.uuid4().hex[:8]}"
    admin = create_engine(parsed, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        if not keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class District:
    """The devices and the people and cars that recur in the district."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.sites = [f"compound-{i:02d}" for i in range(SITES)]
        self.doors = [(self.sites[i % SITES], f"door-{i:04d}") for i in range(DOORS)]
        self.gates = [(self.sites[i % SITES], f"gate-{i:03d}") for i in range(GATES)]
        self.cameras = [(self.sites[i % SITES], f"cam-{i:03d}") for i in range(CAMERAS)]
        self.homes = [(self.sites[i % SITES], f"panic-{i:05d}") for i in range(HOMES)]
        self.devices = self.doors + self.gates + self.cameras + self.homes
        self.cars = [
            (rng.randrange(SITES), self._plate()) for _ in range(RESIDENT_CARS)
        ]  # (home compound, plate)
        cards = [f"{rng.randrange(10**10):010d}" for _ in range(RESIDENTS)]
        self.people = [(rng.randrange(SITES), pseudonymise(c, "card"), mask_tail(c)) for c in cards]
        self.doors_of = [[d for d in self.doors if d[0] == s] for s in self.sites]
        self.gates_of = [[g for g in self.gates if g[0] == s] for s in self.sites]

    def _plate(self) -> str:
        r = self.rng
        return r.choice(PROVINCES) + r.choice(LETTERS) + "".join(r.choices("0123456789", k=5))

    def _some(self, n: int) -> int:
        """An index in [0, n), the lower ones more often (some come and go more)."""
        return int(n * self.rng.random() ** 1.5)

    def _home_or_away(self, home: int) -> int:
        return home if self.rng.random() < 0.85 else self.rng.randrange(SITES)

    def row(self, t: datetime) -> str:
        """One event as a COPY line of the events table (the writer's columns and format)."""
        r = self.rng
        x = r.random()
        if x < 0.55:  # a resident swipes a card at a door, mostly at home
            home, ref, masked = self.people[self._some(RESIDENTS)]
            site, device = r.choice(self.doors_of[self._home_or_away(home)])
            kind, type_ = "access", "access_granted" if r.random() < 0.96 else "access_denied"
            direction = r.choice(("in", "out"))
            attrs = (
                f'{{"door":"{device}","direction":"{direction}",'
                f'"card_ref":"{ref}","card_masked":"{masked}"}}'
            )
            raw = f'{{"v":1,"type":"{type_}","attrs":{{"door":"{device}","card":"{masked}","direction":"{direction}"}}}}'
        elif x < 0.75:  # a plate read: a resident car (80%) or a visitor
            if r.random() < 0.8:
                home, plate = self.cars[self._some(RESIDENT_CARS)]
                site, device = r.choice(self.gates_of[self._home_or_away(home)])
            else:
                plate = self._plate()
                site, device = r.choice(self.gates)
            kind, type_ = "gate", "plate_read"
            colour = "green" if r.random() < 0.2 else "blue"
            direction = r.choice(("in", "out"))
            conf = round(r.uniform(0.85, 1), 3)
            attrs = (
                f'{{"plate":"{plate}","plate_colour":"{colour}",'
                f'"direction":"{direction}","confidence":{conf}}}'
            )
            raw = f'{{"v":1,"type":"plate_read","attrs":{{"plate":"{plate}","plate_colour":"{colour}","confidence":{conf}}}}}'
        elif x < 0.80:
            site, device = r.choice(self.cameras)
            kind, type_ = "perimeter", r.choice(("motion", "intrusion", "line_crossing"))
            attrs = '{"label":"person","confidence":0.9}'
            raw = f'{{"v":1,"type":"{type_}","attrs":{{"label":"person"}}}}'
        elif x < 0.999:
            site, device = r.choice(self.devices)
            kind = (
                "access"
                if device.startswith("door")
                else "gate"
                if device.startswith("gate")
                else "perimeter"
                if device.startswith("cam")
                else "alarm"
            )
            type_, attrs = "heartbeat", "{}"
            raw = f'{{"v":1,"type":"heartbeat","kind":"{kind}"}}'
        else:
            site, device = r.choice(self.homes)
            kind, type_ = "alarm", "panic"
            attrs = f'{{"household":"h{device[6:]}"}}'
            raw = '{"v":1,"type":"panic","attrs":{"battery":80}}'
        at = t.isoformat(" ")
        received = (t + timedelta(milliseconds=r.randrange(5, 900))).isoformat(" ")
        event_id = f"lianfang-json:{device}:h{r.getrandbits(128):032x}"
        raw = raw.replace("\\", "\\\\")
        attrs = attrs.replace("\\", "\\\\")
        return (
            f"{event_id}\t{site}\t{device}\t{kind}\t{type_}\t{at}\t{received}\t{attrs}"
            f"\tlianfang-json\t{raw}\n"
        )


def use_period(engine: Engine, period: partitions.Period) -> None:
    """Weekly partitions instead of the migration's months (the database is still empty)."""
    with engine.begin() as conn:
        parts = partitions.partitions(conn)
        if partitions.period_of(parts) is period:
            return
        until = parts[-1].end
        for p in parts[1:]:
            conn.exec_driver_sql(f"DROP TABLE {p.name}")
        partitions.ensure_partitions(conn, until, period=period)


def load(engine: Engine, d: District, n: int, start: datetime, end: datetime) -> float:
    """COPY n events in time order into events and their ids into event_keys; rows/s."""
    step = (end - start) / n
    queue: Queue[bytes | None] = Queue(maxsize=8)

    def produce() -> None:
        chunk: list[str] = []
        for i in range(n):
            chunk.append(d.row(start + step * i))
            if len(chunk) == 20_000:
                queue.put("".join(chunk).encode())
                chunk = []
        if chunk:
            queue.put("".join(chunk).encode())
        queue.put(None)

    producer = threading.Thread(target=produce, daemon=True)
    started = time.perf_counter()
    producer.start()
    columns = (
        "event_id, site, device_id, kind, type, occurred_at, received_at, attributes, source, raw"
    )
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur:  # type: ignore[attr-defined]
            cur.execute("SET TimeZone = 'UTC'")
            while (block := queue.get()) is not None:
                with cur.copy(f"COPY events ({columns}) FROM STDIN") as copy:
                    copy.write(block)
                raw.commit()
            cur.execute(
                "INSERT INTO event_keys (event_id, occurred_at) SELECT event_id, occurred_at"
                " FROM events"
            )
            # the cockpit's hourly counts, as the writer keeps them (and migration 0007 fills)
            cur.execute(f"INSERT INTO event_counts (site, hour, kind, n) {COUNT_EVENTS_BY_HOUR}")
            raw.commit()
    finally:
        raw.close()
    return n / (time.perf_counter() - started)


def p95(samples: list[float]) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))] * 1000, 2)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--period", choices=["month", "week"], default="month")
    parser.add_argument(
        "--per-day", type=int, default=150_000, help="events a day in the district (time span)"
    )
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    days = max(31.0, args.rows / args.per_day)
    if days > 380:
        raise SystemExit("the partitions of a new database reach 13 months back: raise --per-day")
    end = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    start = end - timedelta(days=days)
    d = District(rng)
    with fresh_database(args.database_url, args.keep) as url:
        engine = make_engine(url)
        migrate(engine)
        use_period(engine, partitions.Period(args.period))
        load_rate = load(engine, d, args.rows, start, end)
        started = time.perf_counter()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE events")
            conn.exec_driver_sql("VACUUM ANALYZE event_keys")
        vacuum_s = time.perf_counter() - started
        result = questions(engine, d, rng, end)
        with engine.connect() as conn:
            sizes = conn.exec_driver_sql(
                "SELECT sum(pg_table_size(c.oid)), sum(pg_indexes_size(c.oid)),"
                " count(*) FILTER (WHERE c.reltuples > 0)"
                " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'events'::regclass"
            ).one()
            keys = conn.exec_driver_sql(
                "SELECT pg_table_size('event_keys'), pg_indexes_size('event_keys')"
            ).one()
            total_parts = len(partitions.partitions(conn))
            counts_bytes = conn.exec_driver_sql(
                "SELECT pg_total_relation_size('event_counts')"
            ).scalar_one()
            settings = dict(
                conn.exec_driver_sql(
                    "SELECT name, setting FROM pg_settings"
                    " WHERE name IN ('shared_buffers', 'work_mem', 'effective_cache_size')"
                ).all()
            )
        engine.dispose()
    out = {
        "rows": args.rows,
        "partitions": int(sizes[2]),
        "partitions_total": total_parts,
        "period": args.period,
        "days": round(days, 1),
        "load_rows_per_s": round(load_rate, 1),
        "vacuum_analyze_s": round(vacuum_s, 1),
        **result,
        "table_bytes": int(sizes[0]),
        "index_bytes": int(sizes[1]),
        "event_keys_table_bytes": int(keys[0]),
        "event_keys_index_bytes": int(keys[1]),
        "event_counts_bytes": int(counts_bytes),
        "bytes_per_row": round(
            (int(sizes[0]) + int(sizes[1]) + sum(keys) + int(counts_bytes)) / args.rows, 1
        ),
        "server_settings": settings,
        "machine_cores": os.cpu_count(),
        "targets_at_5M_ms": {"traces_p95": 100, "device_day_p95": 50, "site_month_counts_p95": 200},
    }
    print(json.dumps(out))


def questions(engine: Engine, d: District, rng: random.Random, end: datetime) -> dict[str, Any]:
    month = district.Window(end - timedelta(days=30), end + timedelta(minutes=1))
    plate_s, person_s, device_s, counts_s, raw_counts_s = [], [], [], [], []
    found = {"plate": 0, "person": 0, "device": 0, "counts": 0}
    first_day = (end - timedelta(days=29)).astimezone(ZONE).date()
    for _ in range(REPEATS):
        _, plate = d.cars[rng.randrange(RESIDENT_CARS)]
        took, page = timed(lambda p=plate: district.trace(engine, "plate", p, month))
        plate_s.append(took)
        found["plate"] += len(page.items)
        _, ref, _ = d.people[rng.randrange(RESIDENTS)]
        took, page = timed(lambda r=ref: district.trace(engine, "card_ref", r, month))
        person_s.append(took)
        found["person"] += len(page.items)
        _, door = rng.choice(d.doors)
        day = first_day + timedelta(days=rng.randrange(29))
        since, until = district.day_bounds(day, TZ)
        window = district.Window(since, until)
        took, page = timed(lambda dev=door, w=window: district.device_day(engine, dev, w))
        device_s.append(took)
        found["device"] += len(page.items)
        site = rng.choice(d.sites)
        took, counts = timed(
            lambda s=site: district.site_counts(engine, [s], month.since, month.until, tz=TZ)
        )
        counts_s.append(took)
        found["counts"] += sum(c.count for c in counts)
        took, _ = timed(
            lambda s=site: district._counted_from_events(engine, [s], month.since, month.until)
        )
        raw_counts_s.append(took)
    return {
        "plate_trace_p95_ms": p95(plate_s),
        "person_trace_p95_ms": p95(person_s),
        "device_day_p95_ms": p95(device_s),
        "site_month_counts_p95_ms": p95(counts_s),
        # the same counts aggregated from the events (index-only scan), without event_counts
        "site_month_counts_from_events_p95_ms": p95(raw_counts_s),
        "p50_ms": {
            "plate_trace": round(statistics.median(plate_s) * 1000, 2),
            "person_trace": round(statistics.median(person_s) * 1000, 2),
            "device_day": round(statistics.median(device_s) * 1000, 2),
            "site_month_counts": round(statistics.median(counts_s) * 1000, 2),
            "site_month_counts_from_events": round(statistics.median(raw_counts_s) * 1000, 2),
        },
        "repeats": REPEATS,
        "mean_rows_returned": {k: round(v / REPEATS, 1) for k, v in found.items()},
    }


if __name__ == "__main__":
    main()
