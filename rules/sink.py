"""Where signals go: the ``SignalSink`` protocol and an in-memory sink that logs."""

from __future__ import annotations

import logging
from collections import deque
from typing import Protocol

from rules.signal import Signal

log = logging.getLogger(__name__)


class SignalSink(Protocol):
    """Receives every signal in order; the incident pipeline implements this."""

    async def emit(self, signal: Signal) -> None: ...


class MemorySink:
    """Logs each signal and keeps the last ``maxlen`` in memory."""

    def __init__(self, maxlen: int = 500) -> None:
        self.signals: deque[Signal] = deque(maxlen=maxlen)

    async def emit(self, signal: Signal) -> None:
        log.info(
            "signal %s %s %s [%s] %s",
            signal.kind,
            signal.state,
            signal.signal_id,
            signal.severity.value,
            signal.title_en,
        )
        self.signals.append(signal)
