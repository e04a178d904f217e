"""Fuzzing, on a fixed budget per run: payload decoding, the profile engine (through the
normaliser, every shipped profile) and ONVIF notifications. Seeds are the corpus under
``tests/fuzz_corpus/`` and the captured samples; Hypothesis mutates them and adds its own.

What must hold for any input: nothing raises but the documented refusals, a refusal has a
known reason, and everything kept or shown is bounded.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_adapters.onvif import topics as onvif
from device_adapters.registry import load_adapters
from gateway.config.loader import load_yaml
from gateway.config.settings import IngestConfig
from gateway.events import RAW_PAYLOAD_LIMIT, Event
from gateway.ingest.decode import Rejected, decode_payload
from gateway.ingest.panic_sniff import looks_like_panic
from gateway.ingest.pipeline import UNREADABLE_REASONS, Normaliser
from gateway.ingest.reasons import Reason
from gateway.ingest.unregistered import UnregisteredPanics
from tests.support.two_sites import registry

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"
T0 = datetime(2026, 11, 22, 13, 5, tzinfo=UTC)
BUDGET = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LIMITS = {"max_bytes": 64 * 1024, "max_depth": 32}


def _samples() -> list[tuple[str, bytes]]:
    """(topic, payload) of the profiles' captured samples."""
    out = []
    for path in sorted((Path(__file__).resolve().parent / "profiles").rglob("*.yaml")):
        case = load_yaml(path)
        payload = case["payload"]
        raw = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
        out.append((str(case["topic"]), raw))
    return out


SAMPLES = _samples()
PAYLOADS = [p.read_bytes() for p in sorted((CORPUS / "payloads").glob("*.bin"))]
SEEDS = PAYLOADS + [raw for _, raw in SAMPLES]
TOPICS = [
    *sorted({t for t, _ in SAMPLES}),
    "lianfang/north-compound/panic-1/event",
    "lianfang/north-compound/ghost/event",
    "lianfang/nowhere/x/status",
    "zigbee2mqtt/sos-known",
    "zigbee2mqtt/new button",
    "zigbee2mqtt/x/availability",
]
NOTIFICATIONS = [
    json.loads(p.read_text("utf-8")) for p in sorted((CORPUS / "onvif").glob("*.json"))
] + [c["message"] for c in json.loads((ROOT / "tests/onvif_fixtures/standard.json").read_text())]


@st.composite
def mutated(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    """A seed with a few byte-level edits: flips, cuts, insertions, repeats."""
    data = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "repeat"]))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del data[at : at + draw(st.integers(1, 16))]
        elif op == "insert":
            data[at:at] = draw(
                st.sampled_from([b"{", b"}", b"[", b'"', b"\\", b":", b",", b"\\u", b"\xff", b"0"])
            )
        else:
            data[at:at] = data[at : at + draw(st.integers(1, 8))] * 3
    return bytes(data)


payloads = st.one_of(st.binary(max_size=300), mutated(SEEDS))
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True)
    | st.text(max_size=30)
    | st.sampled_from(["panic", "emergency", "access", "alarm", "2026-11-22T21:03:00+08:00"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["v", "seq", "ts", "kind", "type", "attrs", "action", "contact", "x"])
            | st.text(max_size=8),
            inner,
            max_size=6,
        )
    ),
    max_leaves=25,
)


# -- payload decoding -------------------------------------------------------------------


def check_decoded(raw: bytes, fmt: str) -> None:
    try:
        value = decode_payload(raw, fmt, **LIMITS)
    except Rejected as exc:
        assert exc.reason in set(Reason)
        assert len(exc.detail) <= 300
        return
    assert isinstance(value, dict | list | str | int | float | bool | type(None))
    if fmt == "text":
        assert isinstance(value, str)


@pytest.mark.parametrize("raw", SEEDS, ids=lambda r: repr(r[:20]))
def test_decoding_the_corpus(raw: bytes) -> None:
    for fmt in ("json", "json_or_text", "text"):
        check_decoded(raw, fmt)


@BUDGET
@given(raw=payloads, fmt=st.sampled_from(["json", "json_or_text", "text"]))
def test_decoding_any_bytes(raw: bytes, fmt: str) -> None:
    check_decoded(raw, fmt)


# -- the profile engine, through the normaliser -----------------------------------------


def normaliser() -> Normaliser:
    reg = registry()
    return Normaliser(
        load_adapters(ROOT / "config" / "profiles"),
        reg,
        # every record kept, so that each one's bounds are checked
        IngestConfig(
            quarantine_per_source_per_minute=100_000,
            quarantine_per_reason_per_minute=1_000_000,
            quarantine_per_minute=1_000_000,
        ),
        clock=lambda: T0,
        unregistered=UnregisteredPanics(reg, per_site_per_minute=10_000),
    )


NORMALISER = normaliser()  # shared: its caches and sampler state are part of what is fuzzed


def check_processed(topic: str, raw: bytes) -> None:
    failures = NORMALISER.stats.rejected[Reason.ADAPTER_ERROR.value]
    outcome = NORMALISER.process(topic, raw)  # never raises
    # A shipped profile refuses with a reason; it never fails (adapter_error is the
    # normaliser's net for plug-ins' bugs).
    assert NORMALISER.stats.rejected[Reason.ADAPTER_ERROR.value] == failures, (topic, raw)
    for event in outcome.events:
        assert isinstance(event, Event)
        assert len(event.raw) <= RAW_PAYLOAD_LIMIT and len(event.event_id) <= 128
        assert event.occurred_at <= T0 + timedelta(days=1)
    record = outcome.quarantined
    if record is not None:
        assert record.reason in set(Reason)
        assert len(record.raw) <= 4096 and record.size == len(raw)
        assert len(record.detail) <= 1000 and len(record.topic) <= 512
        assert not outcome.events
    for alarm in outcome.alarms:
        # an unregistered device's panic, or an unreadable message that looks like one
        assert record is not None
        if alarm.unreadable:
            assert record.reason in UNREADABLE_REASONS and looks_like_panic(raw)
        else:
            assert record.reason is Reason.UNKNOWN_DEVICE
        assert alarm.site in {"north-compound", "south-compound"}


@pytest.mark.parametrize(("topic", "raw"), SAMPLES)
def test_the_profiles_on_their_samples_and_the_corpus(topic: str, raw: bytes) -> None:
    check_processed(topic, raw)
    for seed in PAYLOADS:
        check_processed(topic, seed)


@BUDGET
@given(
    topic=st.sampled_from(TOPICS) | st.text(max_size=40),
    raw=payloads | json_values.map(lambda v: json.dumps(v).encode()),
)
def test_the_profiles_on_anything(topic: str, raw: bytes) -> None:
    check_processed(topic, raw)


# -- ONVIF notifications ----------------------------------------------------------------


def check_notification(data: dict[str, Any]) -> None:
    try:
        n = onvif.Notification.from_fixture(data)
    except (KeyError, TypeError, AttributeError):
        return  # not a notification at all (the PullPoint reader never builds one)
    onvif.topic_key(n.topic)
    onvif.parser_topic(n.topic)
    result = asyncio.run(
        onvif.normalise(n, camera_id="cam-1", site="s1", offset=timedelta(0), received_at=T0)
    )
    assert result.outcome in set(onvif.Outcome)
    for event in result.events:
        assert len(event.raw) <= 4096
        assert abs(event.occurred_at - T0) <= onvif.FUTURE_SLACK


@pytest.mark.parametrize("data", NOTIFICATIONS, ids=lambda d: str(d.get("topic"))[:40])
def test_onvif_corpus(data: dict[str, Any]) -> None:
    check_notification(data)


items = st.dictionaries(
    st.sampled_from(["State", "IsMotion", "IsInside", "Card", "DoorToken", "Rule", "ObjectId"])
    | st.text(max_size=10),
    st.sampled_from(["true", "false", "1", "0", "DoorForcedOpen", ""]) | st.text(max_size=20),
    max_size=5,
)


@BUDGET
@given(
    base=st.sampled_from(NOTIFICATIONS),
    topic=st.none() | st.text(max_size=60),
    utc_time=st.none() | st.text(max_size=30) | st.datetimes().map(lambda d: d.isoformat()),
    operation=st.none() | st.sampled_from(["Initialized", "Changed", "Deleted"]),
    source=st.none() | items,
    data=st.none() | items,
)
def test_onvif_anything(
    base: dict[str, Any],
    topic: str | None,
    utc_time: str | None,
    operation: str | None,
    source: dict[str, str] | None,
    data: dict[str, str] | None,
) -> None:
    message = dict(base)
    for key, value in (
        ("topic", topic),
        ("utc_time", utc_time),
        ("operation", operation),
        ("source", source),
        ("data", data),
    ):
        if value is not None:
            message[key] = value
    check_notification(message)


@BUDGET
@given(st.binary(max_size=2048))
def test_the_panic_sniffer_on_anything(raw: bytes) -> None:
    assert isinstance(looks_like_panic(raw), bool)  # never raises, whatever the bytes
