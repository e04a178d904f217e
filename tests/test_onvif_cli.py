"""``lianfang cameras`` (probe against the simulator; discover only refuses without opt-in —
tests never send multicast) and onvif.yaml validation."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from device_adapters.onvif import load_cameras
from gateway.cli.cameras_cmd import app
from gateway.config.errors import ConfigErrors
from gateway.demo.camera_sim import SimCamera
from tests.support.onvif_sim import PASSWORD_ENV

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture
def threaded_camera() -> Iterator[SimCamera]:
    """A simulated camera on its own event loop thread (the CLI runs asyncio.run itself)."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    cam = SimCamera("cam-cli", clock_skew_s=-90)
    asyncio.run_coroutine_threadsafe(cam.start(), loop).result(10)
    try:
        yield cam
    finally:
        asyncio.run_coroutine_threadsafe(cam.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_probe_shows_what_the_camera_supports(threaded_camera: SimCamera) -> None:
    result = runner.invoke(app, ["probe", threaded_camera.url, "--password-env", PASSWORD_ENV])
    assert result.exit_code == 0, result.output
    assert "Lianfang SimCam-1" in result.output
    assert "PullPoint events: yes" in result.output
    assert "rtsp://127.0.0.1:554/main" in result.output
    assert "clock offset: -9" in result.output


def test_probe_json_and_wrong_password(
    threaded_camera: SimCamera, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok = runner.invoke(
        app, ["probe", threaded_camera.url, "--password-env", PASSWORD_ENV, "--json"]
    )
    assert ok.exit_code == 0
    assert [p["token"] for p in json.loads(ok.output)["profiles"]] == ["main", "sub"]
    monkeypatch.setenv("WRONG_PW", "nope")
    bad = runner.invoke(app, ["probe", threaded_camera.url, "--password-env", "WRONG_PW"])
    assert bad.exit_code == 2
    assert "auth_failed: authentication refused" in bad.output


def test_probe_offline_camera_and_bad_url() -> None:
    offline = runner.invoke(app, ["probe", "http://127.0.0.1:9", "--timeout", "1"])
    assert offline.exit_code == 2 and "unreachable" in offline.output
    bad = runner.invoke(app, ["probe", "ftp://127.0.0.1"])
    assert bad.exit_code == 1 and "http(s)://host" in bad.output


def test_discover_needs_explicit_opt_in() -> None:
    result = runner.invoke(app, ["discover"])
    assert result.exit_code == 1
    assert "--yes-send-multicast" in result.output


def test_shipped_onvif_file_is_an_empty_template() -> None:
    # a production start must not reach for the demo's cameras
    assert load_cameras(ROOT / "config" / "onvif.yaml").cameras == []


@pytest.mark.parametrize(
    ("body", "key_path", "message"),
    [
        ("cameras:\n  - {id: a, site: s, host: h, pasword_env: X}\n", "cameras[0].pasword_env",
         "unknown key"),
        ("cameras:\n  - {id: a, site: s}\n", "cameras[0]", "exactly one of `url` or `host`"),
        ("cameras:\n  - {id: a, site: s, host: h, renew_margin_s: 5, pull_timeout_s: 10}\n",
         "cameras[0]", "renew_margin_s must be longer than pull_timeout_s"),
        ("cameras:\n  - {id: a, site: s, host: h}\n  - {id: a, site: s, host: h}\n", "cameras",
         "appears twice"),
    ],
)  # fmt: skip
def test_config_errors_name_file_and_key_path(
    tmp_path: Path, body: str, key_path: str, message: str
) -> None:
    path = tmp_path / "onvif.yaml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigErrors) as info:
        load_cameras(path)
    err = info.value.errors[0]
    assert err.file == str(path)
    assert err.key_path == key_path
    assert message in err.message


def test_password_file_must_be_private(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    secret.chmod(0o644)
    path = tmp_path / "onvif.yaml"
    path.write_text("cameras:\n  - {id: a, site: s, host: h, password_file: pw}\n")
    cam = load_cameras(path).cameras[0]
    with pytest.raises(ConfigErrors, match="chmod 600"):
        cam.password()
    secret.chmod(0o600)
    assert cam.password() == "s3cret"
