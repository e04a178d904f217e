"""The demo's device password: from the environment, else generated once per data folder."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from gateway.demo.devices import PASSWORD_ENV, demo_device_password


def test_generated_once_per_data_folder_and_owner_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    first = demo_device_password(tmp_path)
    monkeypatch.delenv(PASSWORD_ENV)
    assert demo_device_password(tmp_path) == first
    assert len(first) >= 12
    mode = stat.S_IMODE((tmp_path / "demo-device-password").stat().st_mode)
    assert mode == 0o600
    monkeypatch.delenv(PASSWORD_ENV)
    assert demo_device_password(tmp_path / "other") != first


def test_environment_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "given-by-operator")
    assert demo_device_password(tmp_path) == "given-by-operator"
    assert not (tmp_path / "demo-device-password").exists()
