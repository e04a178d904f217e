"""Partition periods and bounds (no database): months and Monday weeks in UTC, contiguous,
and the bounds PostgreSQL renders in any session time zone read back as UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.storage.partitions import Partition, Period, _timestamp, period_of


def test_months_and_weeks_tile_time() -> None:
    t = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert Period.MONTH.start(t) == datetime(2026, 12, 1, tzinfo=UTC)
    assert Period.MONTH.next(Period.MONTH.start(t)) == datetime(2027, 1, 1, tzinfo=UTC)
    monday = Period.WEEK.start(t)
    assert monday.weekday() == 0 and monday <= t < Period.WEEK.next(monday)
    # a Shanghai instant just after local midnight is still the previous UTC day
    local = datetime(2027, 1, 1, 0, 30, tzinfo=UTC) - timedelta(hours=8)
    assert Period.MONTH.start(local) == datetime(2026, 12, 1, tzinfo=UTC)


def test_bounds_in_any_session_zone_read_as_utc() -> None:
    expected = datetime(2026, 1, 1, tzinfo=UTC)
    for text in ("2026-01-01 08:00:00+08", "2026-01-01 00:00:00+00", "2025-12-31 19:00:00-05"):
        assert _timestamp(text) == expected


def test_the_period_is_read_from_the_newest_partition() -> None:
    start = datetime(2026, 1, 5, tzinfo=UTC)
    old = Partition("events_old", None, start)
    week = Partition("events_p20260105", start, start + timedelta(days=7))
    month = Partition(
        "events_p20260201", datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 3, 1, tzinfo=UTC)
    )
    assert period_of([old, week]) is Period.WEEK
    assert period_of([old, week, month]) is Period.MONTH
    assert period_of([old]) is Period.MONTH  # the default
