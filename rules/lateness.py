"""When an event is too late for the rules: one policy for the live gateway, ``lianfang rules
test`` and the API's mark on an event (docs/rules.md, "Time").

An event is *late* when it arrived more than the tolerance after its device time
(``received_at - occurred_at``), or when it is older than the watermark (the latest device
time seen, never ahead of its own receipt) minus the tolerance. Late events are counted and
not used by match, threshold, sequence or duration rules; panic and absence rules still see
them. ``rules test --as-recorded`` judges by device time alone, to replay captured payloads
with their own timestamps on purpose.
"""

from __future__ import annotations

from datetime import datetime

DEFAULT_TOLERANCE_S = 30.0


def arrival_delay_s(occurred_at: datetime, received_at: datetime) -> float:
    """How long after its device time the gateway received an event (negative: the device's
    clock is ahead)."""
    return (received_at - occurred_at).total_seconds()


def late_on_arrival(occurred_at: datetime, received_at: datetime, tolerance_s: float) -> bool:
    """Arrived more than ``tolerance_s`` after it happened (by its device's clock)."""
    return arrival_delay_s(occurred_at, received_at) > tolerance_s
