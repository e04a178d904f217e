"""Interpreter settings for a long-running gateway process (``lianfang run`` / ``demo``, and
the benchmarks, which must measure what runs).

- **GIL switch interval 0.5 ms** (Python's default is 5 ms): the receive, write and alarm
  threads share one interpreter, and the alarm path must not queue behind bulk work
  (``bench/alarm_latency.py``).
- **Garbage collector**: objects alive after start-up (configuration, compiled profiles and
  rules, the grid, imported modules) are frozen out of collection, and the youngest
  generation is collected every 50,000 allocations instead of 700. At thousands of events a
  second the default thresholds ran a collection every few hundred messages, each walking
  the objects in flight; ``bench/ingest.py`` measured 200,000 events at 5,500/s with the
  defaults and 6,735/s with these (CPU per event 197 → 160 µs). Events hold no reference
  cycles, so little waits longer for collection.
"""

from __future__ import annotations

import gc
import sys

SWITCH_INTERVAL_S = 0.0005
GC_THRESHOLDS = (50_000, 20, 100)


def tune_interpreter(
    *,
    switch_interval_s: float = SWITCH_INTERVAL_S,
    gc_thresholds: tuple[int, int, int] = GC_THRESHOLDS,
) -> None:
    """Apply the settings above; call once, after start-up (it freezes what exists then)."""
    sys.setswitchinterval(switch_interval_s)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*gc_thresholds)
