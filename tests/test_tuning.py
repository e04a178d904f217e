"""gateway.tuning: what `lianfang run` applies to the interpreter after start-up."""

from __future__ import annotations

import gc
import sys

from gateway.tuning import GC_THRESHOLDS, SWITCH_INTERVAL_S, tune_interpreter


def test_tune_interpreter_sets_switch_interval_gc_thresholds_and_freezes() -> None:
    before = (sys.getswitchinterval(), gc.get_threshold())
    try:
        gc.unfreeze()
        assert gc.get_freeze_count() == 0
        tune_interpreter()
        assert sys.getswitchinterval() == SWITCH_INTERVAL_S
        assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_freeze_count() > 1000  # the objects alive at start-up: modules, config
    finally:
        gc.unfreeze()
        sys.setswitchinterval(before[0])
        gc.set_threshold(*before[1])
