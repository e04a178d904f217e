"""The console's catalogue names every value of the domain's enums in both languages, so the
Chinese console never has to show an enum name (the browser tests scan the pages for them)."""

from __future__ import annotations

from enum import StrEnum

import pytest

from gateway.events import DeviceKind, EventType
from gateway.grid.model import Role
from gateway.incidents.categories import IncidentCategory, Source
from gateway.incidents.lifecycle import Action, Stage
from gateway.ingest.reasons import Reason
from gateway.routing.model import Channel
from gateway.web.i18n import LANGS, catalogue

VOCABULARIES: list[tuple[str, type[StrEnum]]] = [
    ("kind", DeviceKind),
    ("type", EventType),
    ("role", Role),
    ("source", Source),
    ("channel", Channel),
    ("stage", Stage),
    ("cat", IncidentCategory),
    ("act", Action),
    ("reason", Reason),
]


@pytest.mark.parametrize(("prefix", "enum"), VOCABULARIES, ids=[p for p, _ in VOCABULARIES])
def test_every_enum_value_has_a_label_in_both_languages(prefix: str, enum: type[StrEnum]) -> None:
    zh, en = catalogue("zh"), catalogue("en")
    for member in enum:
        key = f"{prefix}.{member.value}"
        assert zh.get(key) and en.get(key), key
        assert any("\u4e00" <= ch <= "\u9fff" for ch in zh[key]), (key, zh[key])
        assert zh[key] != member.value and en[key] != member.value, key


def test_both_languages_have_the_same_keys_and_no_blank() -> None:
    tables = [catalogue(lang) for lang in LANGS]
    assert tables[0].keys() == tables[1].keys()
    assert not [k for table in tables for k, v in table.items() if not v.strip()]
