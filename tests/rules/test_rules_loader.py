"""Rule files are validated strictly; errors name file, rule id, key path and reason."""

from __future__ import annotations

from pathlib import Path

import pytest
from rules_helpers import DEFAULT_RULES, write_rules

from gateway.config import ConfigErrors
from rules.errors import RuleError
from rules.loader import load_rules

GOOD = """
rules:
  - id: r1
    severity: P2
    category: access
    title: {zh: "门 {door}", en: "Door {door}"}
    condition:
      type: threshold
      when: {kind: access, type: access_denied}
      count: 3
      window: 1m
      group_by: [device_id, attributes.door]
"""


def errors_of(tmp_path: Path, text: str) -> list[str]:
    write_rules(tmp_path, text)
    with pytest.raises(ConfigErrors) as info:
        load_rules(tmp_path)
    return [str(e) for e in info.value.errors]


def test_default_rule_set_is_valid() -> None:
    rs = load_rules(DEFAULT_RULES)
    ids = {r.id for r in rs.rules}
    assert {
        "panic_button",
        "door_forced_open",
        "door_held_open",
        "access_denied_repeated",
        "perimeter_intrusion_night",
        "perimeter_then_door",
        "watchlist_plate",
        "vehicle_denied_repeated",
        "camera_tamper",
        "device_offline",
        "panic_battery_low",
    } <= ids
    assert rs.watchlists["wanted_plates"].contains("浙a0000x")


def test_good_file_compiles(tmp_path: Path) -> None:
    write_rules(tmp_path, GOOD)
    rs = load_rules(tmp_path)
    cond = rs.rules[0].rule.condition
    assert cond.type == "threshold" and cond.window == 60.0


def test_unknown_key_names_file_rule_and_path(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, GOOD.replace("count: 3", "count: 3\n      cuont: 4"))
    assert len(errs) == 1
    assert str(tmp_path / "rules.yaml") in errs[0]
    assert "rule r1" in errs[0]
    assert "rules[0].condition.cuont" in errs[0]
    assert "unknown key" in errs[0]


def test_error_carries_rule_id_field(tmp_path: Path) -> None:
    write_rules(tmp_path, GOOD.replace("count: 3", "count: 1"))
    with pytest.raises(ConfigErrors) as info:
        load_rules(tmp_path)
    err = info.value.errors[0]
    assert isinstance(err, RuleError)
    assert err.rule_id == "r1" and err.key_path == "rules[0].condition.count"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (("window: 1m", "window: 1 minute"), "invalid duration"),
        (("type: access_denied", "type: acess_denied"), "condition.when.type"),
        (("attributes.door", "attributes.dor"), "unknown attribute 'dor'"),
        (("severity: P2", "severity: P9"), "rules[0].severity"),
        (("category: access", "category: acces"), "rules[0].category"),
        (('en: "Door {door}"', 'en: "Door {door.__class__}"'), "plain name"),
    ],
)
def test_bad_values_are_explained(tmp_path: Path, change: tuple[str, str], fragment: str) -> None:
    errs = errors_of(tmp_path, GOOD.replace(*change))
    assert any(fragment in e and "rule r1" in e for e in errs), errs


def test_expression_is_checked_at_load(tmp_path: Path) -> None:
    text = GOOD.replace("type: access_denied}", "type: access_denied, expr: 'atributes.door == 1'}")
    errs = errors_of(tmp_path, text)
    assert "unknown name 'atributes'" in errs[0] and "condition.when.expr" in errs[0]
    errs = errors_of(
        tmp_path, GOOD.replace("type: access_denied}", "type: access_denied, expr: 'door ==='}")
    )
    assert "invalid expression" in errs[0]
    errs = errors_of(
        tmp_path, GOOD.replace("type: access_denied}", "type: access_denied, expr: 'open(1)'}")
    )
    assert "only these functions" in errs[0]


def test_attribute_must_exist_for_kind(tmp_path: Path) -> None:
    text = GOOD.replace("type: access_denied}", "type: access_denied, attributes: {plate: X}}")
    assert "does not exist for kind access" in errors_of(tmp_path, text)[0]


def test_panic_rules_cannot_be_suppressed(tmp_path: Path) -> None:
    text = """
    rules:
      - id: p
        severity: P1
        category: panic
        title: {zh: 报警, en: Panic}
        condition: {type: match, when: {type: panic}}
        cooldown: 1m
    """
    assert "never suppressed" in errors_of(tmp_path, text)[0]


def test_cross_file_problems(tmp_path: Path) -> None:
    write_rules(tmp_path, GOOD, "a.yaml")
    write_rules(tmp_path, GOOD, "b.yaml")
    write_rules(
        tmp_path,
        """
    inhibit:
      - source: {rules: [nope]}
        target: {rules: [r1]}
    rules:
      - id: w
        severity: P2
        category: vehicle
        title: {zh: 车, en: Car}
        condition:
          type: match
          when: {kind: gate, watchlist: {list: missing, field: attributes.plate}}
    """,
        "c.yaml",
    )
    with pytest.raises(ConfigErrors) as info:
        load_rules(tmp_path)
    text = str(info.value)
    assert "b.yaml: rule r1: rules[0].id: rule id is already used in" in text
    assert "unknown watch list 'missing'" in text
    assert "c.yaml: inhibit[0].source.rules: unknown rule id 'nope'" in text


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, "rules: [\n  - id: x\n")
    assert "line" in errs[0] and "invalid YAML" in errs[0]


def test_missing_watchlist_file(tmp_path: Path) -> None:
    errs = errors_of(tmp_path, "watchlists:\n  - {id: plates, file: nothere.txt}\n")
    assert "watchlists[0].file" in errs[0] and "cannot read" in errs[0]


def test_missing_path() -> None:
    with pytest.raises(ConfigErrors, match="no such file"):
        load_rules(Path("/nonexistent/rules"))
