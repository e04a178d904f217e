"""The incident lifecycle (太平通, six stages) as a pure state machine.

::

    discovered ─dispatch→ dispatched ─accept→ handling ─feedback→ feedback
        │                   │  ↺ dispatch       │  ↺ dispatch       │ ─reject→ handling
        │                   │                   │                   ↓ verify
        └──── false_alarm / cancel (from any open stage) ───→   verified ─evaluate→ evaluated
    verified / evaluated / false_alarm / cancelled ─reopen→ discovered

``acknowledge``, ``comment``, ``attach`` and ``escalate`` are recorded in any stage without
changing it. Anything else is refused with ``IllegalTransition`` saying why and what is
allowed (the API answers 409).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Stage(StrEnum):
    DISCOVERED = "discovered"  # 发现问题
    DISPATCHED = "dispatched"  # 流转信息
    HANDLING = "handling"  # 处置问题
    FEEDBACK = "feedback"  # 反馈结果
    VERIFIED = "verified"  # 网格员核实核准
    EVALUATED = "evaluated"  # 监督评价
    FALSE_ALARM = "false_alarm"  # 误报
    CANCELLED = "cancelled"  # 已撤销


class Action(StrEnum):
    OPEN = "open"  # first timeline entry
    DISPATCH = "dispatch"  # assign (or re-assign) handlers
    ACCEPT = "accept"  # a handler starts work
    FEEDBACK = "feedback"  # the handler reports the result
    VERIFY = "verify"  # a grid worker confirms the result
    REJECT = "reject"  # verification failed: back to handling
    EVALUATE = "evaluate"  # supervision scores 1–5
    FALSE_ALARM = "false_alarm"
    CANCEL = "cancel"
    REOPEN = "reopen"
    ACKNOWLEDGE = "acknowledge"  # a notified receiver confirmed it saw the incident
    COMMENT = "comment"
    ATTACH = "attach"
    ESCALATE = "escalate"  # system: an acknowledgement deadline passed
    SIGNAL = "signal"  # system: another rule signal attached (grouping, resolve, cancel)
    NOTIFY = "notify"  # system: notifications queued


STAGE_ZH: dict[Stage, str] = {
    Stage.DISCOVERED: "发现问题",
    Stage.DISPATCHED: "流转信息",
    Stage.HANDLING: "处置问题",
    Stage.FEEDBACK: "反馈结果",
    Stage.VERIFIED: "核实核准",
    Stage.EVALUATED: "监督评价",
    Stage.FALSE_ALARM: "误报",
    Stage.CANCELLED: "已撤销",
}

OPEN_STAGES = frozenset({Stage.DISCOVERED, Stage.DISPATCHED, Stage.HANDLING, Stage.FEEDBACK})
CLOSED_STAGES = frozenset(Stage) - OPEN_STAGES
RESOLVED_STAGES = frozenset({Stage.VERIFIED, Stage.EVALUATED})  # closed with a result

# action → {from stage: to stage}
TRANSITIONS: dict[Action, dict[Stage, Stage]] = {
    Action.DISPATCH: {
        Stage.DISCOVERED: Stage.DISPATCHED,
        Stage.DISPATCHED: Stage.DISPATCHED,
        Stage.HANDLING: Stage.DISPATCHED,
    },
    Action.ACCEPT: {Stage.DISPATCHED: Stage.HANDLING},
    Action.FEEDBACK: {Stage.HANDLING: Stage.FEEDBACK},
    Action.VERIFY: {Stage.FEEDBACK: Stage.VERIFIED},
    Action.REJECT: {Stage.FEEDBACK: Stage.HANDLING},
    Action.EVALUATE: {Stage.VERIFIED: Stage.EVALUATED},
    Action.FALSE_ALARM: {s: Stage.FALSE_ALARM for s in OPEN_STAGES},
    Action.CANCEL: {s: Stage.CANCELLED for s in OPEN_STAGES},
    Action.REOPEN: {s: Stage.DISCOVERED for s in CLOSED_STAGES},
}
RECORD_ONLY = frozenset(
    {
        Action.ACKNOWLEDGE,
        Action.COMMENT,
        Action.ATTACH,
        Action.ESCALATE,
        Action.SIGNAL,
        Action.NOTIFY,
    }
)
# Actions a person may take through the API (OPEN, ESCALATE, SIGNAL, NOTIFY are the system's).
USER_ACTIONS = frozenset(TRANSITIONS) | {Action.ACKNOWLEDGE, Action.COMMENT, Action.ATTACH}


class IllegalTransition(Exception):
    """The action is not allowed in the incident's stage (or lacks what it needs)."""

    def __init__(self, action: Action, stage: Stage, reason: str) -> None:
        self.action, self.stage, self.reason = action, stage, reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class Request:
    """What an action brings besides its name."""

    assignees: tuple[str, ...] = ()
    score: int | None = None
    note: str = ""


def allowed(stage: Stage, *, acknowledged: bool = False) -> list[Action]:
    """Actions possible in ``stage`` (for the UI and for error messages). An incident
    ``acknowledged`` already is not offered ``acknowledge`` again (a repeat is a no-op)."""
    return [a for a, table in TRANSITIONS.items() if stage in table] + sorted(
        a
        for a in RECORD_ONLY
        if a in USER_ACTIONS and not (acknowledged and a is Action.ACKNOWLEDGE)
    )


def next_stage(stage: Stage, action: Action, request: Request = Request()) -> Stage:
    """The stage after ``action``; raises ``IllegalTransition`` with a reason."""
    if action in RECORD_ONLY:
        return stage
    if action is Action.OPEN:
        raise IllegalTransition(action, stage, "an incident is opened only once")
    table = TRANSITIONS[action]
    if stage not in table:
        can = ", ".join(a.value for a in allowed(stage))
        raise IllegalTransition(
            action,
            stage,
            f"cannot {action.value} an incident in stage {stage.value} "
            f"({STAGE_ZH[stage]}); allowed: {can}",
        )
    if action is Action.DISPATCH and not request.assignees:
        raise IllegalTransition(action, stage, "dispatch needs at least one assignee")
    if action is Action.EVALUATE and (request.score is None or not 1 <= request.score <= 5):
        raise IllegalTransition(action, stage, "evaluate needs a score from 1 to 5")
    if action in (Action.FEEDBACK, Action.REJECT, Action.REOPEN) and not request.note.strip():
        raise IllegalTransition(action, stage, f"{action.value} needs a note saying why or what")
    return table[stage]


def replay(actions: Iterable[tuple[Action, Request]]) -> Stage:
    """The stage a sequence of (already accepted) actions leads to from ``discovered``."""
    stage = Stage.DISCOVERED
    for action, request in actions:
        if action is Action.OPEN:
            continue
        stage = next_stage(stage, action, request)
    return stage
