"""Fixtures shared by the incident and notifier tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.http_server import Server


@pytest.fixture
def server() -> Iterator[Server]:
    """A local HTTP receiver (127.0.0.1, free port); script its answers in ``server.script``."""
    s = Server([])
    yield s
    s.close()
