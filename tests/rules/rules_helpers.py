"""Builders shared by the rules tests (unique module name: tests have no __init__.py)."""

from __future__ import annotations

import itertools
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateway.events import Event
from rules.engine import Engine, EngineSettings
from rules.loader import load_rules

# Monday 2025-01-06 12:00 UTC = 20:00 Asia/Shanghai
T0 = datetime(2025, 1, 6, 12, 0, tzinfo=UTC)
DEFAULT_RULES = Path(__file__).resolve().parents[2] / "config" / "rules"

KIND_OF = {
    "access_granted": "access",
    "access_denied": "access",
    "door_open": "access",
    "door_closed": "access",
    "door_forced_open": "access",
    "door_held_open": "access",
    "plate_read": "gate",
    "vehicle_denied": "gate",
    "intrusion": "perimeter",
    "line_crossing": "perimeter",
    "motion": "perimeter",
    "video_loss": "perimeter",
    "panic": "alarm",
    "panic_cancel": "alarm",
    "alarm_input": "alarm",
}
_ids = itertools.count()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ev(
    type_: str,
    t: float,
    device: str = "d1",
    *,
    kind: str | None = None,
    site: str = "s1",
    event_id: str | None = None,
    received: float | None = None,
    **attrs: Any,
) -> Event:
    """An event ``t`` seconds after T0 (received at the same time unless ``received``)."""
    return Event.model_validate(
        {
            "event_id": event_id or f"e{next(_ids)}",
            "occurred_at": at(t),
            "received_at": at(t if received is None else received),
            "site": site,
            "device_id": device,
            "kind": kind or KIND_OF.get(type_, "sensor"),
            "type": type_,
            "attributes": attrs,
        }
    )


def write_rules(tmp: Path, text: str, name: str = "rules.yaml") -> Path:
    path = tmp / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def engine_for(tmp: Path, text: str, **settings: Any) -> Engine:
    return Engine(load_rules(write_rules(tmp, text)), EngineSettings(**settings))
