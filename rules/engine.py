"""The rules engine core: pure and synchronous, time injected.

``process(event)`` evaluates one event on event time; ``advance(now)`` fires absence and
duration timers whose deadline the injected clock has passed. No wall-clock reads here.

Late events (``rules.lateness``): the watermark is the latest event time seen, capped at the
event's receive time plus ``future_skew_s`` (default 0) so a device whose clock runs ahead
cannot push it — any allowance beyond the late tolerance would make every other device's
events late. An event that arrived more than ``late_tolerance_s`` after its device time, or is
older than ``watermark - late_tolerance_s``, is *late*: it is counted in ``counters.late``,
logged once per device, and not used by match, threshold, sequence or duration rules. Panic
rules and absence (liveness) rules still see it: a delayed panic is still a panic, and any
message proves a device is alive. ``judge_arrival=False`` judges by device time alone
(replaying captured events with their own timestamps on purpose).

``process(event, rebuild=True)`` is for a site's stored events replayed to rebuild its state
(rules.rebuild, a site taken over from another worker): the watermark neither judges nor
moves, since live events of other sites have pushed it past them; lateness on arrival is
judged as it was when the event first came.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.events import Event
from rules.conditions import Hit, Ref, make_state
from rules.context import Ctx, LabelLookup
from rules.dedup import SeenIds
from rules.inhibit import Inhibitor
from rules.lateness import DEFAULT_TOLERANCE_S
from rules.predicate import Check, ExpressionFailed, IndexKey
from rules.render import build_signal, signal_labels
from rules.ruleset import RuleSet
from rules.runtime import OpenSignal, RuleRuntime, RuleStats
from rules.signal import Signal

log = logging.getLogger(__name__)

STATE_VERSION = 1
LATE_LOG_DEVICES = 1000  # devices whose first late event is logged; then one summary line
_NO_LABELS: Mapping[str, str] = {}
Trigger = tuple[RuleRuntime, int, Check, bool]  # runtime, role (-1 = cancel), check, late ok


@dataclass(frozen=True)
class EngineSettings:
    late_tolerance_s: float = DEFAULT_TOLERANCE_S
    future_skew_s: float = 0.0
    judge_arrival: bool = True  # False: device time alone decides (rules test --as-recorded)
    dedup_capacity: int = 200_000
    max_groups_per_rule: int = 100_000
    max_signal_events: int = 20
    timezone: str = "Asia/Shanghai"
    restart_grace_s: float = 60.0
    prune_every_s: float = 30.0


@dataclass
class EngineCounters:
    events: int = 0
    duplicates: int = 0
    late: int = 0
    expr_errors: int = 0
    inhibited: int = 0
    out_of_schedule: int = 0


@dataclass(frozen=True)
class RuleState:
    """One rule as the API shows it."""

    id: str
    description: str
    description_zh: str
    severity: str
    category: str
    condition: str
    file: str
    enabled: bool
    groups: int  # groups with state (windows, timers)
    active_signals: int
    stats: RuleStats

    @property
    def last_fired_at(self) -> datetime | None:
        t = self.stats.last_fired_at
        return None if t is None else datetime.fromtimestamp(t, UTC)


def _signal_id(rule_id: str, group: str, anchor: str) -> str:
    digest = hashlib.sha1(f"{rule_id}\x1f{group}\x1f{anchor}".encode(), usedforsecurity=False)
    return f"{rule_id}:{digest.hexdigest()[:12]}"


class Engine:
    def __init__(
        self,
        ruleset: RuleSet,
        settings: EngineSettings | None = None,
        device_labels: LabelLookup | None = None,
    ) -> None:
        self.settings = settings or EngineSettings()
        self.counters = EngineCounters()
        self.watermark = -math.inf
        self._tz = ZoneInfo(self.settings.timezone)
        self._lookup = device_labels
        self._seen = SeenIds(self.settings.dedup_capacity)
        self._late_logged: set[str] = set()
        self._overrides: dict[str, bool] = {}  # enable/disable from the API
        self._maintenance: dict[str, float] = {}  # from the API: device id → until
        self._last_prune = -math.inf
        self._runtimes: dict[str, RuleRuntime] = {}
        self._index: dict[IndexKey, tuple[Trigger, ...]] = {}
        self.ruleset = ruleset
        self._inhibitor = Inhibitor(())
        self._file_maintenance: dict[str, float] = {}
        self.swap(ruleset)

    # ---- rule set -------------------------------------------------------------------------

    def swap(self, ruleset: RuleSet) -> None:
        """Install a validated rule set. Rules whose condition is unchanged keep their state
        (windows, timers, open signals); the switch happens in one step."""
        runtimes: dict[str, RuleRuntime] = {}
        for cr in ruleset.rules:
            old = self._runtimes.get(cr.id)
            enabled = self._overrides.get(cr.id, cr.rule.enabled)
            if old is not None and old.compiled.fingerprint == cr.fingerprint:
                rt = RuleRuntime(cr, old.cond, enabled, old.open, old.stats)
            else:
                rt = RuleRuntime.fresh(cr, self.settings.max_groups_per_rule)
                rt.enabled = enabled
                if old is not None:
                    rt.open, rt.stats = old.open, old.stats
            runtimes[cr.id] = rt
        file_maint = {
            d: (u.timestamp() if u else math.inf) for d, u in ruleset.maintenance_until().items()
        }
        index = self._build_index(runtimes)
        self.ruleset, self._runtimes, self._index = ruleset, runtimes, index
        self._inhibitor = Inhibitor(ruleset.inhibit)
        self._file_maintenance = file_maint

    @staticmethod
    def _build_index(runtimes: Mapping[str, RuleRuntime]) -> dict[IndexKey, tuple[Trigger, ...]]:
        index: dict[IndexKey, list[Trigger]] = {}
        for rt in runtimes.values():
            if not rt.enabled:
                continue
            cr = rt.compiled
            absence = cr.rule.condition.type == "absence"
            late_ok = cr.rule.is_panic or absence
            roles = list(enumerate(cr.selectors))
            if cr.cancel is not None:
                roles.append((-1, cr.cancel))
            for role, sel in roles:
                for key in sel.keys:
                    index.setdefault(key, []).append((rt, role, sel.check, late_ok))
        return {k: tuple(v) for k, v in index.items()}

    def hold_timers(self, site: str, until: datetime) -> int:
        """``site`` was just rebuilt (rules.rebuild): its absence and duration timers that
        come due before ``until`` wait until then (``ConditionState.hold``)."""
        t = until.timestamp()
        return sum(rt.cond.hold(site, t) for rt in self._runtimes.values() if rt.cond.timer)

    def set_enabled(self, rule_id: str, enabled: bool) -> bool:
        """Enable or disable a rule (kept across reloads). False if the id is unknown. A
        re-enabled rule starts with fresh condition state."""
        rt = self._runtimes.get(rule_id)
        if rt is None:
            return False
        self._overrides[rule_id] = enabled
        if enabled and not rt.enabled:
            rt.cond = make_state(rt.compiled, self.settings.max_groups_per_rule)
        rt.enabled = enabled
        self._index = self._build_index(self._runtimes)
        return True

    def set_maintenance(self, device_id: str, until: datetime | None, *, on: bool = True) -> None:
        """Inhibit (non-panic) signals of a device until ``until`` (None: until turned off)."""
        if on:
            self._maintenance[device_id] = until.timestamp() if until else math.inf
        else:
            self._maintenance.pop(device_id, None)

    def forget_device(self, device_id: str) -> int:
        """A device left the registry: drop the timers (absence, duration) of the rules that
        group by ``device_id`` for it, so it is not reported offline or held open once
        removed. Signals already raised stay. Returns the number of groups dropped."""
        dropped = 0
        for rt in self._runtimes.values():
            if "device_id" in rt.compiled.rule.condition.group_by:
                dropped += rt.cond.forget_device(device_id)
        return dropped

    # ---- evaluation -----------------------------------------------------------------------

    def process(self, event: Event, rebuild: bool = False) -> list[Signal]:
        if not self._seen.add(event.event_id):
            self.counters.duplicates += 1
            return []
        self.counters.events += 1
        c = Ctx(event, self._lookup, self._tz)
        wm = self.watermark
        tol = self.settings.late_tolerance_s
        if rebuild:  # a stored event replayed (module doc): only its own arrival judges it
            late = self.settings.judge_arrival and c.rt - c.t > tol
        else:
            late = c.t < wm - tol or (self.settings.judge_arrival and c.rt - c.t > tol)
        if late:
            self.counters.late += 1
            self._log_late(event, wm)
        if rebuild:
            low = -math.inf
        else:
            capped = min(c.t, c.rt + self.settings.future_skew_s)
            if capped > wm:
                self.watermark = wm = capped
            low = wm - tol
        triggers = self._index.get((event.kind, event.type))
        if not triggers:
            return []
        out: list[Signal] = []
        for rt, role, check, late_ok in triggers:
            if late and not late_ok:
                continue
            try:
                if not check(c):
                    continue
            except ExpressionFailed as exc:
                rt.stats.expr_errors += 1
                self.counters.expr_errors += 1
                if rt.stats.expr_errors == 1:
                    log.warning(
                        "rule %s: expression failed on event %s: %s",
                        rt.compiled.id,
                        event.event_id,
                        exc,
                    )
                continue
            key = rt.compiled.key(c)
            if role < 0:
                out.extend(self._cancel(rt, c, key))
                continue
            hit = rt.cond.on_event(role, c, key, low)
            if hit is not None:
                out.extend(self._emit(rt, hit))
        return out

    def _log_late(self, event: Event, watermark: float) -> None:
        """Once per device (bounded): which event was late and by how much."""
        if event.device_id in self._late_logged:
            return
        if len(self._late_logged) >= LATE_LOG_DEVICES:
            if len(self._late_logged) == LATE_LOG_DEVICES:
                self._late_logged.add("")  # said once: no more per-device lines
                log.warning("late events from more than %d devices: see counters.late",
                            LATE_LOG_DEVICES)  # fmt: skip
            return
        self._late_logged.add(event.device_id)
        delay = (event.received_at - event.occurred_at).total_seconds()
        behind = watermark - event.occurred_at.timestamp()
        log.warning(
            "rules skipped a late %s event from %s (arrived %.0f s after its device time, "
            "%.0f s behind the newest; tolerance %.0f s): only panic and absence rules saw it "
            "(logged once per device; docs/rules.md, Time)",
            event.type.value, event.device_id, delay, behind, self.settings.late_tolerance_s,
        )  # fmt: skip

    def advance(self, now: datetime) -> list[Signal]:
        """Fire timers whose deadline ``now`` (the injected clock) has passed; prune state."""
        t = now.timestamp()
        hits: list[tuple[float, int, RuleRuntime, Hit]] = []
        for n, rt in enumerate(self._runtimes.values()):
            if rt.enabled and rt.cond.timer:
                hits.extend((h.at, n, rt, h) for h in rt.cond.advance(t))
        hits.sort(key=lambda x: (x[0], x[1]))
        out: list[Signal] = []
        for _, _, rt, hit in hits:
            out.extend(self._emit(rt, hit))
        if t - self._last_prune >= self.settings.prune_every_s:
            self._prune(t)
        return out

    def _prune(self, now: float) -> None:
        self._last_prune = now
        low = self.watermark - self.settings.late_tolerance_s
        for rt in self._runtimes.values():
            rt.cond.prune(low)
            rt.prune_open(now)
        for device in [d for d, u in self._maintenance.items() if u <= now]:
            del self._maintenance[device]

    # ---- signals --------------------------------------------------------------------------

    def _labels_of(self, device_id: str | None) -> Mapping[str, str]:
        if self._lookup is None or device_id is None:
            return _NO_LABELS
        return self._lookup(device_id) or _NO_LABELS

    def _under_maintenance(self, device_id: str | None, at: float) -> bool:
        if device_id is None:
            return False
        until = self._maintenance.get(device_id) or self._file_maintenance.get(device_id)
        return until is not None and at < until

    def _emit(self, rt: RuleRuntime, hit: Hit) -> list[Signal]:
        rule = rt.compiled.rule
        stats = rt.stats
        dev_labels = hit.ctx.labels if hit.ctx is not None else self._labels_of(hit.where.device_id)
        o = rt.open.get(hit.group)
        max_ev = self.settings.max_signal_events
        if hit.resolve:
            if o is None or not o.active:
                return []
            o.active = False
            stats.updates += 1
            return [
                build_signal(
                    rule,
                    hit,
                    signal_id=o.signal_id,
                    kind="update",
                    state="resolved",
                    severity=o.severity,
                    count=o.count,
                    labels=o.labels,
                    device_labels=dev_labels,
                    refs=hit.refs,
                    max_events=max_ev,
                )
            ]
        panic = rule.is_panic
        if not panic and not rt.compiled.in_schedule(hit.at):
            stats.out_of_schedule += 1
            self.counters.out_of_schedule += 1
            return []
        if not panic and o is not None and hit.at < o.until:
            new_refs = [Ref.of(hit.ctx)] if hit.ctx is not None else hit.refs
            o.count += len(new_refs)
            o.active = True
            stats.updates += 1
            return [
                build_signal(
                    rule,
                    hit,
                    signal_id=o.signal_id,
                    kind="update",
                    state="firing",
                    severity=o.severity,
                    count=o.count,
                    labels=o.labels,
                    device_labels=dev_labels,
                    refs=new_refs,
                    max_events=max_ev,
                )
            ]
        labels = signal_labels(rule, dev_labels)
        if not panic:
            why_not = None
            if self._under_maintenance(hit.where.device_id, hit.at):
                why_not = "maintenance"
            else:
                why_not = self._inhibitor.inhibited(
                    rule, hit.group, hit.where, labels, hit.at, self._runtimes
                )
            if why_not is not None:
                stats.inhibited += 1
                self.counters.inhibited += 1
                log.debug("rule %s group %s inhibited by %s", rule.id, hit.group, why_not)
                return []
        anchor = hit.refs[0].event_id if panic and hit.refs else repr(hit.at)
        sid = _signal_id(rule.id, hit.group, anchor)
        hold = (rule.cancel.within if rule.cancel else 0.0) if panic else rule.effective_cooldown
        rt.open[hit.group] = OpenSignal(
            sid,
            hit.at,
            hit.at + hold,
            rule.severity,
            len(hit.refs),
            hit.where,
            labels,
            timer=rt.cond.timer,
        )
        stats.fired += 1
        stats.last_fired_at = hit.at
        stats.last_signal_id = sid
        return [
            build_signal(
                rule,
                hit,
                signal_id=sid,
                kind="new",
                state="firing",
                severity=rule.severity,
                count=len(hit.refs),
                labels=labels,
                device_labels=dev_labels,
                refs=hit.refs,
                max_events=max_ev,
            )
        ]

    def _cancel(self, rt: RuleRuntime, c: Ctx, key: str) -> list[Signal]:
        spec = rt.compiled.rule.cancel
        o = rt.open.get(key)
        if (
            spec is None
            or o is None
            or not o.active
            or not o.started <= c.t <= o.started + spec.within
        ):
            return []
        o.active = False
        o.severity = spec.severity
        rt.stats.updates += 1
        hit = Hit(key, c.t, [Ref.of(c)], "", o.where, c)
        why = (
            f"cancelled: {c.event.type.value} (event {c.event.event_id}) "
            f"{c.t - o.started:.0f}s after firing, within the {spec.within:.0f}s grace period; "
            f"severity lowered to {spec.severity.value}, signal kept"
        )
        return [
            build_signal(
                rt.compiled.rule,
                hit,
                signal_id=o.signal_id,
                kind="update",
                state="cancelled",
                severity=spec.severity,
                count=o.count,
                labels=o.labels,
                device_labels=c.labels,
                refs=hit.refs,
                max_events=self.settings.max_signal_events,
                explanation=why,
            )
        ]

    # ---- status and persistence -----------------------------------------------------------

    def status(self) -> list[RuleState]:
        out = []
        for rt in self._runtimes.values():
            r = rt.compiled.rule
            out.append(
                RuleState(
                    id=r.id,
                    description=r.description,
                    description_zh=r.description_zh or r.description,
                    severity=r.severity.value,
                    category=r.category.value,
                    condition=r.condition.type,
                    file=rt.compiled.file,
                    enabled=rt.enabled,
                    groups=rt.cond.size(),
                    active_signals=sum(1 for o in rt.open.values() if o.active),
                    stats=rt.stats,
                )
            )
        return out

    def snapshot(self, keep_ids: int = 20_000) -> dict[str, Any]:
        """JSON-able state: windows, timers, open signals, stats, switches, recent ids."""
        return {
            "version": STATE_VERSION,
            "watermark": None if math.isinf(self.watermark) else self.watermark,
            "seen": self._seen.recent(keep_ids),
            "overrides": dict(self._overrides),
            "maintenance": {
                d: (None if math.isinf(u) else u) for d, u in self._maintenance.items()
            },
            "rules": {
                rid: {
                    "fingerprint": rt.compiled.fingerprint,
                    "cond": rt.cond.snapshot(),
                    "open": {k: o.dump() for k, o in rt.open.items()},
                    "stats": rt.stats.dump(),
                }
                for rid, rt in self._runtimes.items()
            },
        }

    def restore(self, data: Mapping[str, Any], now: datetime) -> None:
        """Load a snapshot taken before a restart. Condition state is restored only for rules
        whose condition did not change; overdue absence timers fire after the restart grace."""
        if data.get("version") != STATE_VERSION:
            log.warning("rules state version %r ignored", data.get("version"))
            return
        wm = data.get("watermark")
        self.watermark = -math.inf if wm is None else float(wm)
        self._seen.extend(data.get("seen", []))
        self._overrides.update({str(k): bool(v) for k, v in data.get("overrides", {}).items()})
        self._maintenance.update(
            {
                d: (math.inf if u is None else float(u))
                for d, u in data.get("maintenance", {}).items()
            }
        )
        t = now.timestamp()
        for rid, saved in data.get("rules", {}).items():
            rt = self._runtimes.get(rid)
            if rt is None:
                continue
            rt.enabled = self._overrides.get(rid, rt.compiled.rule.enabled)
            if saved.get("fingerprint") == rt.compiled.fingerprint:
                rt.cond.restore(saved.get("cond", {}), t, self.settings.restart_grace_s)
            rt.open = {k: OpenSignal.load(v) for k, v in saved.get("open", {}).items()}
            rt.stats = RuleStats.load(saved.get("stats", {}))
        self._index = self._build_index(self._runtimes)
