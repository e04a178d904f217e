"""The batch writer's PostgreSQL event path: COPY into a session's temporary table, then one
statement that claims the new event ids in ``event_keys``, inserts only those events and
adds them to the cockpit's hourly counts (``event_counts``).

Why this shape (docs/datapool.md has the measurements):

- COPY is the cheapest way for rows into PostgreSQL, and its text lines are made in the
  *submitting* thread, as the SQLite path's tuples are: the writer thread hands one buffer
  to the driver, which releases the GIL while the server works.
- ``events`` is partitioned by ``occurred_at``, so its own unique keys must hold that column;
  a redelivery of an event from a device without a clock has a different ``occurred_at``
  (its receipt time). ``event_keys`` (one row per event id, not partitioned) is therefore the
  one place that says "stored already": ``INSERT … ON CONFLICT DO NOTHING RETURNING`` claims
  the ids, and only the claimed rows go into ``events``, in arrival order (``seq``).
- Everything is in the writer's transaction, acknowledged after its commit; a check of a
  fencing token (several gateways on one database) can join the same transaction.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from gateway.events import Event
from gateway.storage import partitions
from gateway.storage.timetext import utc_text
from gateway.storage.writer import attributes_json

BATCH_TABLE = "event_batch"
_COLUMNS = (
    "event_id, site, device_id, kind, type, occurred_at, received_at, attributes, source, raw"
)
_CREATE_BATCH_TABLE = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS {BATCH_TABLE} (
    ord BIGINT GENERATED ALWAYS AS IDENTITY,
    event_id TEXT NOT NULL, site TEXT NOT NULL, device_id TEXT NOT NULL, kind TEXT NOT NULL,
    type TEXT NOT NULL, occurred_at TIMESTAMPTZ NOT NULL, received_at TIMESTAMPTZ NOT NULL,
    attributes JSON NOT NULL, source TEXT NOT NULL, raw TEXT NOT NULL
) ON COMMIT DELETE ROWS
"""
_COPY = f"COPY {BATCH_TABLE} ({_COLUMNS}) FROM STDIN"
# The first arrival of each id in the batch claims it; the rest of the batch, and every id
# claimed by an earlier batch, is a redelivery. ORDER BY ord: seq follows arrival. The rows
# stored are added to the cockpit's hourly counts in the same statement.
_INSERT = f"""
WITH firsts AS (
    SELECT DISTINCT ON (event_id) * FROM {BATCH_TABLE} ORDER BY event_id, ord
), claimed AS (
    INSERT INTO event_keys (event_id, occurred_at)
    SELECT event_id, occurred_at FROM firsts
    ON CONFLICT (event_id) DO NOTHING
    RETURNING event_id
), stored AS (
    INSERT INTO events ({_COLUMNS})
    SELECT {", ".join(f"f.{c.strip()}" for c in _COLUMNS.split(","))}
    FROM firsts f JOIN claimed USING (event_id)
    ORDER BY f.ord
    RETURNING site, occurred_at, kind
), counted AS (
    INSERT INTO event_counts (site, hour, kind, n)
    SELECT site, timezone('UTC', date_trunc('hour', timezone('UTC', occurred_at))), kind, count(*)
    FROM stored GROUP BY 1, 2, 3
    ON CONFLICT (site, hour, kind) DO UPDATE SET n = event_counts.n + EXCLUDED.n
)
SELECT count(*) FROM stored
"""
_INFO_KEY = "lianfang.event_batch"

# COPY's text format: backslash, tab, newline and carriage return are escaped; PostgreSQL
# text cannot hold NUL at all, so it becomes U+FFFD (a payload is kept, never refused).
_SPECIAL = re.compile(r"[\\\t\n\r\x00]")
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": "\ufffd"})


def _text(value: str) -> str:
    return value.translate(_ESCAPES) if _SPECIAL.search(value) else value


def _time(value: datetime) -> str:
    """UTC with its offset, as COPY reads it (gateway/storage/timetext.py)."""
    return utc_text(value, "+00")


def copy_line(e: Event) -> str:
    """One event as a line of COPY text. Escaping is rare (a payload with a backslash or a
    line break): one search over all the text fields decides whether any is needed."""
    texts: tuple[str, ...] = (
        e.event_id,
        e.site,
        e.device_id,
        attributes_json(e.attributes),
        e.source,
        e.raw,
    )
    if _SPECIAL.search("".join(texts)):
        texts = tuple(_text(t) for t in texts)
    event_id, site, device_id, attributes, source, raw = texts
    return (
        f"{event_id}\t{site}\t{device_id}\t{e.kind.value}\t{e.type.value}\t"
        f"{_time(e.occurred_at)}\t{_time(e.received_at)}\t{attributes}\t{source}\t{raw}\n"
    )


class PostgresEventPath:
    """Encodes events (submitting thread) and inserts a batch of them (writer thread)."""

    def __init__(self) -> None:
        self._latest = datetime.min.replace(tzinfo=UTC)  # newest occurred_at submitted
        self._covered_until: datetime | None = None  # partitions exist up to here

    def encode(self, e: Event) -> str:
        if e.occurred_at > self._latest:
            self._latest = e.occurred_at
        return copy_line(e)

    def insert(self, conn: Connection, lines: list[str]) -> int:
        """Insert the events of ``lines`` not stored before; returns how many were new."""
        self._ensure_partitions(conn)
        dbapi = conn.connection.driver_connection
        info = conn.connection.info
        try:
            with dbapi.cursor() as cur:  # type: ignore[union-attr]
                if not info.get(_INFO_KEY):
                    cur.execute(_CREATE_BATCH_TABLE)
                    info[_INFO_KEY] = True
                with cur.copy(_COPY) as copy:
                    copy.write("".join(lines).encode())
                cur.execute(_INSERT)
                row = cur.fetchone()
                return int(row[0]) if row else 0
        except psycopg.Error as exc:
            # The rollback may undo the temporary table's creation: make it again next time.
            info.pop(_INFO_KEY, None)
            # The driver's own error, raised as SQLAlchemy's: the writer retries those (and
            # acknowledges nothing meanwhile), where any other exception would end its thread.
            raise DBAPIError("COPY of an event batch", None, exc) from exc

    def _ensure_partitions(self, conn: Connection) -> None:
        """A partition for the newest event before it is inserted (the retention job creates
        them ahead; this covers a gateway that was down past the last one). A failure rolls
        the batch back, and the writer's retry reads the partitions again."""
        latest = self._latest
        if self._covered_until is not None and latest < self._covered_until:
            return
        parts = partitions.partitions(conn)
        covered = parts[-1].end if parts else None
        if covered is None or latest >= covered:
            self._covered_until = None
            partitions.ensure_partitions(conn, latest + _EPSILON)
            parts = partitions.partitions(conn)
            covered = parts[-1].end
        self._covered_until = covered


_EPSILON = timedelta(microseconds=1)
