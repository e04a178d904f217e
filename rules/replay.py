"""Replay recorded events through an engine on a virtual clock (``lianfang rules test``).

The clock follows the events' ``received_at`` (never going back); before each event the
engine's timers are advanced to it, and at the end to ``until`` (default: the last event).
Events are fed in file order, so out-of-order and duplicated deliveries replay as recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.config import ConfigError, ConfigErrors
from gateway.events import Event
from rules.engine import Engine
from rules.signal import Signal


def read_jsonl(path: Path) -> list[tuple[int, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigErrors([ConfigError(str(path), "<file>", f"cannot read: {exc}")]) from exc
    return [
        (n, line)
        for n, line in enumerate(text.splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#")
    ]


def read_events(path: Path) -> list[Event]:
    """One ``Event`` JSON per line; errors name the line."""
    events, errors = [], []
    for n, line in read_jsonl(path):
        try:
            events.append(Event.model_validate_json(line))
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "<event>"
            errors.append(ConfigError(str(path), f"line {n}: {where}", first["msg"]))
    if errors:
        raise ConfigErrors(errors)
    return events


def read_expected(path: Path) -> list[dict[str, Any]]:
    out = []
    for n, line in read_jsonl(path):
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigErrors(
                [ConfigError(str(path), f"line {n}", f"invalid JSON: {exc}")]
            ) from exc
        if not isinstance(item, dict):
            raise ConfigErrors([ConfigError(str(path), f"line {n}", "expected a JSON object")])
        out.append(item)
    return out


def replay(engine: Engine, events: Iterable[Event], until: datetime | None = None) -> list[Signal]:
    signals: list[Signal] = []
    clock: datetime | None = None
    for event in events:
        if clock is None or event.received_at > clock:
            clock = event.received_at
        signals += engine.advance(clock)
        signals += engine.process(event)
    end = until if until is not None else clock
    if end is not None:
        signals += engine.advance(end)
    return signals


def compare(actual: list[Signal], expected: list[dict[str, Any]]) -> list[str]:
    """Differences, in order. Each expected line compares only the keys it gives."""
    problems = []
    briefs = [s.brief() for s in actual]
    for i, want in enumerate(expected):
        if i >= len(briefs):
            problems.append(
                f"signal {i + 1}: missing, expected {json.dumps(want, ensure_ascii=False)}"
            )
            continue
        got = briefs[i]
        diff = {k: (v, got.get(k)) for k, v in want.items() if got.get(k) != v}
        if diff:
            detail = "; ".join(f"{k}: expected {w!r}, got {g!r}" for k, (w, g) in diff.items())
            problems.append(f"signal {i + 1} ({got['rule_id']}): {detail}")
    for j in range(len(expected), len(briefs)):
        problems.append(f"signal {j + 1}: unexpected {json.dumps(briefs[j], ensure_ascii=False)}")
    return problems
