"""Shared fixtures: brokers, a temporary gateway configuration, PostgreSQL when reachable."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.brokers import MOSQUITTO, MosquittoBroker

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "config"

# Personal-data hashing needs a key; tests use a fixed one so references are comparable.
os.environ.setdefault("LIANFANG_PII_KEY", "test-only-key-not-for-production")


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A private Mosquitto on a free port; skipped where Mosquitto is not installed."""
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (the embedded-broker tests still run)")
    broker = MosquittoBroker(tmp_path / "mosquitto")
    broker.workdir.mkdir()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def postgres_url() -> str | None:
    """The machine's PostgreSQL when reachable, else None (tests skip)."""
    url = os.environ.get(
        "LIANFANG_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    try:
        import psycopg

        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), connect_timeout=2):
            return url
    except Exception:
        return None
