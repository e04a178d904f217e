"""The six-stage lifecycle: every transition rule, and property-based sequences."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.incidents.lifecycle import (
    CLOSED_STAGES,
    OPEN_STAGES,
    RECORD_ONLY,
    TRANSITIONS,
    USER_ACTIONS,
    Action,
    IllegalTransition,
    Request,
    Stage,
    allowed,
    next_stage,
    replay,
)

FULL = Request(assignees=("p-worker-1",), score=4, note="done")


def test_the_happy_path_walks_the_six_stages() -> None:
    steps = [Action.DISPATCH, Action.ACCEPT, Action.FEEDBACK, Action.VERIFY, Action.EVALUATE]
    stage = Stage.DISCOVERED
    seen = [stage]
    for action in steps:
        stage = next_stage(stage, action, FULL)
        seen.append(stage)
    assert seen == [
        Stage.DISCOVERED,
        Stage.DISPATCHED,
        Stage.HANDLING,
        Stage.FEEDBACK,
        Stage.VERIFIED,
        Stage.EVALUATED,
    ]


def test_illegal_transition_says_why_and_what_is_allowed() -> None:
    with pytest.raises(IllegalTransition) as exc:
        next_stage(Stage.DISCOVERED, Action.VERIFY, FULL)
    assert "cannot verify an incident in stage discovered" in exc.value.reason
    assert "dispatch" in exc.value.reason


@pytest.mark.parametrize(
    ("action", "stage", "request_", "needle"),
    [
        (Action.DISPATCH, Stage.DISCOVERED, Request(), "assignee"),
        (Action.EVALUATE, Stage.VERIFIED, Request(score=6), "1 to 5"),
        (Action.EVALUATE, Stage.VERIFIED, Request(), "1 to 5"),
        (Action.FEEDBACK, Stage.HANDLING, Request(), "note"),
        (Action.REOPEN, Stage.CANCELLED, Request(), "note"),
        (Action.OPEN, Stage.DISCOVERED, FULL, "only once"),
    ],
)
def test_actions_need_what_they_need(
    action: Action, stage: Stage, request_: Request, needle: str
) -> None:
    with pytest.raises(IllegalTransition, match=needle):
        next_stage(stage, action, request_)


def test_closed_stages_only_reopen() -> None:
    for stage in CLOSED_STAGES:
        moving = [a for a in allowed(stage) if a not in RECORD_ONLY]
        if stage is Stage.VERIFIED:
            assert set(moving) == {Action.EVALUATE, Action.REOPEN}
        else:
            assert moving == [Action.REOPEN]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(sorted(USER_ACTIONS)),
            st.sampled_from([Request(), FULL, Request(score=9, note="x")]),
        ),
        max_size=40,
    )
)
def test_no_sequence_reaches_an_illegal_state(steps: list[tuple[Action, Request]]) -> None:
    """Apply any sequence, skipping refused actions: the stage is always reachable, refused
    actions never change it, and replaying the accepted ones gives the same stage."""
    stage = Stage.DISCOVERED
    accepted: list[tuple[Action, Request]] = []
    history = [stage]
    for action, req in steps:
        try:
            after = next_stage(stage, action, req)
        except IllegalTransition as exc:
            assert exc.stage is stage
            assert action not in RECORD_ONLY
            assert stage not in TRANSITIONS.get(action, {}) or action in (
                Action.DISPATCH,
                Action.EVALUATE,
                Action.FEEDBACK,
                Action.REJECT,
                Action.REOPEN,
            )
            continue
        if after is not stage:
            assert after in TRANSITIONS[action].values()
        if after is Stage.EVALUATED:
            assert stage is Stage.VERIFIED and req.score is not None and 1 <= req.score <= 5
        if after is Stage.VERIFIED:
            assert stage is Stage.FEEDBACK
        if stage in CLOSED_STAGES and after is not stage:
            assert action in (Action.REOPEN, Action.EVALUATE)
        stage = after
        accepted.append((action, req))
        history.append(stage)
    assert stage in OPEN_STAGES | CLOSED_STAGES
    assert replay(accepted) is stage
    # evaluated is only ever entered straight from verified
    for before, after in itertools.pairwise(history):
        if after is Stage.EVALUATED and before is not Stage.EVALUATED:
            assert before is Stage.VERIFIED
