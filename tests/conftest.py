"""Shared fixtures: brokers, a temporary gateway configuration, PostgreSQL when reachable."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

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


@contextmanager
def postgres_database() -> Iterator[str]:
    """A throw-away database on the machine's PostgreSQL, or skip."""
    url = postgres_url()
    if url is None:
        pytest.skip("PostgreSQL is not reachable")
    name = f"lianfang_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield str(make_url(url).set(database=name).render_as_string(hide_password=False))
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


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
