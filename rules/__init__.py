"""Rules engine: turns the event stream into incident signals.

Rules are YAML data (``config/rules/``, see ``docs/rules.md``). ``load_rules`` validates and
compiles them; ``Engine`` is the pure, synchronous core (``process`` / ``advance``);
``RulesService`` runs it on the bus with timers, hot reload and persisted state.
"""

from rules.engine import Engine, EngineSettings, RuleState
from rules.labels import labels_from_registry
from rules.loader import load_rules
from rules.ruleset import RuleSet
from rules.service import RulesService
from rules.signal import Signal, SignalEvent
from rules.sink import MemorySink, SignalSink

__all__ = [
    "Engine",
    "EngineSettings",
    "MemorySink",
    "RuleSet",
    "RuleState",
    "RulesService",
    "Signal",
    "SignalEvent",
    "SignalSink",
    "labels_from_registry",
    "load_rules",
]
