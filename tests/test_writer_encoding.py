"""The SQLite hot path's row encoding says what SQLAlchemy and pydantic would: times in
SQLAlchemy's DATETIME text, attributes as ``model_dump_json(exclude_defaults=True)``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gateway.events import ATTRIBUTE_MODELS, DeviceKind
from gateway.storage.writer import _sqlite_time, attributes_json

text = st.one_of(st.none(), st.text(max_size=12))
number = st.one_of(
    st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**6), 10**6)
)
unit = st.one_of(st.none(), st.floats(0, 1), st.integers(0, 1))
scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**40), 2**40), st.floats(), text)
attributes = st.fixed_dictionaries(
    {},
    optional={
        "zone": text,
        "battery_pct": st.one_of(st.none(), st.integers(0, 100)),
        "extra": st.dictionaries(st.text(max_size=6), scalar, max_size=4),
        "door": text,
        "direction": st.sampled_from([None, "in", "out", "unknown"]),
        "card_ref": text,
        "plate": st.one_of(st.none(), st.text(max_size=8)),
        "plate_colour": st.sampled_from([None, "blue", "green", "yellow"]),
        "confidence": unit,
        "lane": text,
        "label": text,
        "track_id": text,
        "phase": st.sampled_from([None, "start", "update", "end"]),
        "household": text,
        "button": text,
        "contact": st.one_of(st.none(), st.booleans()),
        "value": number,
    },
)


@settings(max_examples=500, deadline=None)
@given(kind=st.sampled_from(list(DeviceKind)), values=attributes)
def test_attributes_are_encoded_as_pydantic_encodes_them(
    kind: DeviceKind, values: dict[str, Any]
) -> None:
    model = ATTRIBUTE_MODELS[kind]
    fields = {k: v for k, v in values.items() if k in model.model_fields}
    try:
        attrs = model.model_validate({**fields, "kind": kind.value})
    except ValidationError:
        return  # not an event's attributes
    expected = attrs.model_dump_json(exclude_defaults=True)
    got = attributes_json(attrs)
    assert got == expected


@settings(max_examples=500, deadline=None)
@given(
    moment=st.datetimes(
        min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    )
)
def test_times_are_sqlalchemy_s_text(moment: datetime) -> None:
    assert _sqlite_time(moment) == moment.isoformat(" ", "microseconds")[:26]
    # the per-second prefix is reused within the second, not across seconds
    later = moment + timedelta(microseconds=1)
    assert _sqlite_time(later) == later.isoformat(" ", "microseconds")[:26]
