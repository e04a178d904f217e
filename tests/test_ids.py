"""The id grammar and the name rule (gateway/ids.py): one grammar for sites, places, devices,
grid people, households and accounts, used by the config models, the API and ingest; the
shipped configuration and the simulator fit it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from device_adapters.registry import load_adapters
from gateway.config.settings import IngestConfig
from gateway.config.sites import DeviceConfig, SiteConfig, load_sites
from gateway.demo.simulator.model import FleetModel
from gateway.grid.model import Household, Person, load_grid
from gateway.ids import (
    DEVICE_ID_MAX,
    ID_MAX,
    first_bad_device_id,
    id_problem,
    is_id,
    name_problem,
)
from gateway.ingest.pipeline import Normaliser
from gateway.ingest.reasons import Reason
from tests.support.compound import ROOT, event_payload, write_site

CONFIG = ROOT / "config"
GOOD = ["door-1", "1-1-101", "p-worker-1", "AA:BB:CC:DD:EE:FF", "0x00158d0001a2b3c4", "a.b_c@d~e"]
BAD = [
    "",
    'xx"><img src=x onerror=alert(1)>',
    "a b",
    "a/b",
    "a+b",
    "a#b",
    "$SYS",
    "'quoted'",
    "-lead",
    "=cmd",
    "..",
    "a\x00b",
    "a\nb",
    "门禁1",
    "a\u202eb",
]


@pytest.mark.parametrize("value", GOOD)
def test_good_ids(value: str) -> None:
    assert id_problem(value) is None and is_id(value)


@pytest.mark.parametrize("value", BAD)
def test_bad_ids(value: str) -> None:
    assert id_problem(value) is not None and not is_id(value)


def test_length_limits() -> None:
    assert is_id("a" * ID_MAX) and not is_id("a" * (ID_MAX + 1))
    assert is_id("a" * DEVICE_ID_MAX, DEVICE_ID_MAX)
    assert not is_id("a" * (DEVICE_ID_MAX + 1), DEVICE_ID_MAX)


@pytest.mark.parametrize(
    "name", ["a\x00b", "x\u202egnp.exe", "\u2066x\u2069", "a\u200fb", "a\nb", "a\u2028b", "\ud800"]
)
def test_names_refuse_controls_and_bidi_overrides(name: str) -> None:
    assert name_problem(name) is not None


@pytest.mark.parametrize(
    "name", ["赵敏", "</script><img src=x onerror=alert(1)>", "O'Brien", "ئەھمەت"]
)
def test_names_keep_ordinary_text(name: str) -> None:
    """Markup is escaped where it is shown, not refused; right-to-left scripts are fine."""
    assert name_problem(name) is None


def test_config_models_use_the_grammar() -> None:
    with pytest.raises(ValidationError, match="id may hold"):
        DeviceConfig(id='d"1', kind="access")
    with pytest.raises(ValidationError, match="bidirectional"):
        DeviceConfig(id="d1", kind="access", name="a\u202eb")
    with pytest.raises(ValidationError, match="id may hold"):
        SiteConfig(id="my site")
    with pytest.raises(ValidationError, match="id may hold"):
        Household(id="1/101", site="s")
    with pytest.raises(ValidationError, match="control character"):
        Person(id="p1", name="a\x00b", roles=["grid_worker"])
    with pytest.raises(ValidationError, match="id may hold"):
        Person(id="p1", name="x", roles=["grid_worker"], cells=["c 1"])


def test_shipped_configuration_and_simulator_fit_the_grammar() -> None:
    registry = load_sites(CONFIG / "sites")  # raises on any id outside the grammar
    load_grid(CONFIG / "grid", registry)
    site = registry.sites["demo-compound"]
    ids = [d.id for d in site.devices] + [p.id for p in site.places]
    assert ids and all(is_id(i, DEVICE_ID_MAX) for i in ids)
    # twenty simulated minutes of the demo compound go through ingest without a refusal
    model = FleetModel(site, rate=5.0, seed=3, start=datetime(2026, 5, 1, 22, tzinfo=UTC))
    messages = model.start_messages() + model.due(1200)
    normaliser = Normaliser(
        load_adapters(CONFIG / "profiles", "Asia/Shanghai"), registry, IngestConfig()
    )
    outcomes = [normaliser.process(m.topic, m.payload) for m in messages]
    assert len(messages) > 100
    assert [o.quarantined for o in outcomes if o.quarantined] == []


def _normaliser(tmp_path: Path, *, accept_unknown: bool) -> Normaliser:
    registry = load_sites(write_site(tmp_path / "sites"))
    adapters = load_adapters(CONFIG / "profiles", "Asia/Shanghai")
    return Normaliser(adapters, registry, IngestConfig(accept_unknown_devices=accept_unknown))


@pytest.mark.parametrize("accept_unknown", [False, True])
@pytest.mark.parametrize("device", ['xx"><img', "a b", "$bad", "a\u202eb"])
def test_ingest_quarantines_a_device_id_outside_the_grammar(
    tmp_path: Path, device: str, accept_unknown: bool
) -> None:
    normaliser = _normaliser(tmp_path, accept_unknown=accept_unknown)
    outcome = normaliser.process(f"lianfang/test-compound/{device}/event", event_payload(1))
    assert not outcome.events
    record = outcome.quarantined
    assert record is not None and record.reason is Reason.INVALID_DEVICE_ID
    assert record.device_id is None  # never stored as an id
    assert repr(device)[1:-1] in record.detail
    # a registered device still passes
    ok = normaliser.process("lianfang/test-compound/door-1/event", event_payload(2))
    assert ok.events and ok.quarantined is None


def test_first_bad_device_id() -> None:
    assert first_bad_device_id(["door-1", "door-2"]) is None
    assert "'a b'" in (first_bad_device_id(["door-1", "a b"]) or "")
