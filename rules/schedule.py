"""Time-of-day and weekday windows, evaluated in a configured time zone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from rules.model import Schedule, Weekday

_DAY_INDEX = {d: i for i, d in enumerate(Weekday)}  # mon=0 … sun=6

InSchedule = Callable[[float], bool]


def compile_schedule(schedule: Schedule | None, default_tz: ZoneInfo) -> InSchedule:
    """Epoch seconds → whether that instant is inside any window."""
    if schedule is None:
        return lambda t: True
    tz = ZoneInfo(schedule.timezone) if schedule.timezone else default_tz
    spans: list[tuple[frozenset[int], int, int]] = []
    for w in schedule.windows:
        days = frozenset(_DAY_INDEX[d] for d in w.days)
        spans.append((days, w.start.hour * 60 + w.start.minute, w.end.hour * 60 + w.end.minute))

    def inside(t: float) -> bool:
        local = datetime.fromtimestamp(t, UTC).astimezone(tz)
        day = local.weekday()
        minute = local.hour * 60 + local.minute
        for days, start, end in spans:
            if start < end:
                if day in days and start <= minute < end:
                    return True
            elif (day in days and minute >= start) or ((day - 1) % 7 in days and minute < end):
                return True
        return False

    return inside
