"""The deployment examples of docs/cluster-operations.md say what the page says they do."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.config.settings import GatewayConfig

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"
DURABILITY = (
    "persistence",
    "autosave_interval",
    "autosave_on_changes",
    "persistent_client_expiration",
    "max_queued_messages",
    "max_queued_bytes",
    "max_inflight_messages",
    "set_tcp_nodelay",
)


def directives(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            out[key] = value
    return out


def compose() -> dict[str, Any]:
    data = yaml.safe_load((EXAMPLES / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_runs_postgres_mosquitto_and_three_gracefully_stopped_workers() -> None:
    services = compose()["services"]
    workers = sorted(name for name in services if name.startswith("lianfang-"))
    assert workers == ["lianfang-1", "lianfang-2", "lianfang-3"]
    assert {"postgres", "mosquitto"} <= services.keys()
    hosts = set()
    for name in workers:
        w = services[name]
        assert w["restart"] == "always"
        assert w["stop_signal"] == "SIGTERM"
        assert w["command"][:2] == ["lianfang", "run"]
        assert w["env_file"] == ["compose/lianfang.env"]
        assert w["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert any(v.endswith(":/var/lib/lianfang") for v in w["volumes"])
        assert "/readyz" in " ".join(w["healthcheck"]["test"])
        hosts.add(w["hostname"])
    assert len(hosts) == 3  # distinct worker ids (<host>-<pid>)
    # The first worker starts alone on a fresh database; the others wait until it is ready.
    assert "lianfang-1" not in services["lianfang-1"]["depends_on"]
    for name in ("lianfang-2", "lianfang-3"):
        assert services[name]["depends_on"]["lianfang-1"] == {"condition": "service_healthy"}
    assert any(v.endswith(":/mosquitto/data") for v in services["mosquitto"]["volumes"])
    # Every file the compose file mounts from the repository exists.
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                path = (EXAMPLES / source).resolve()
                assert path.exists() or path.name == "lianfang.passwd", source


def test_compose_mosquitto_keeps_the_shipped_durability_settings() -> None:
    shipped = directives(ROOT / "config" / "mosquitto" / "mosquitto.conf")
    ours = directives(EXAMPLES / "compose" / "mosquitto.conf")
    assert {k: ours.get(k) for k in DURABILITY} == {k: shipped[k] for k in DURABILITY}


def test_no_secret_is_written_in_the_examples() -> None:
    for name in ("compose/lianfang.env.example", "systemd/lianfang.env.example"):
        for line in (EXAMPLES / name).read_text().splitlines():
            if line and not line.startswith("#") and "KEY_FILE" not in line:
                key, _, value = line.partition("=")
                assert value in ("", "admin"), f"{name}: {key} has a value"
    for name in ("compose/lianfang.yaml", "systemd/worker.yaml.example"):
        text = (EXAMPLES / name).read_text()
        assert not re.search(r"postgresql\+psycopg://[^@/]*:[^@/]*@", text), name


@pytest.mark.parametrize("name", ["compose/lianfang.yaml", "systemd/worker.yaml.example"])
def test_worker_configuration_passes_the_gateways_validation(name: str) -> None:
    if "cluster" not in GatewayConfig.model_fields:
        pytest.skip("this checkout has no cluster section yet (issue 16)")
    data = yaml.safe_load((EXAMPLES / name).read_text())
    config = GatewayConfig.model_validate(data)
    assert config.cluster.enabled  # type: ignore[attr-defined]
    assert config.database.url.startswith("postgresql+psycopg://")


def test_systemd_unit_restarts_stops_gracefully_and_reads_secrets_from_files(
    tmp_path: Path,
) -> None:
    unit = (EXAMPLES / "systemd" / "lianfang@.service").read_text()
    lines = set(unit.splitlines())
    for line in (
        "Restart=always",
        "KillSignal=SIGTERM",
        "EnvironmentFile=/etc/lianfang/lianfang.env",
        "ExecStart=/opt/lianfang/venv/bin/lianfang run --config /etc/lianfang/worker-%i.yaml",
    ):
        assert line in lines
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return
    (tmp_path / "lianfang@.service").write_text(
        unit.replace("/opt/lianfang/venv/bin/lianfang", "/bin/true")
    )
    (tmp_path / "lianfang@1.service").symlink_to(tmp_path / "lianfang@.service")
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(tmp_path / "lianfang@1.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if "lianfang@" in line and "Failed to" not in line.split(":", 1)[0]
    ]
    assert done.returncode == 0 and not problems, done.stdout + done.stderr
