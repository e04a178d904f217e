"""The demo's gateway configuration: the shipped config folder, SQLite and keys in a data
folder, an embedded broker on loopback. Used by ``lianfang demo`` and the browser tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.config.settings import ApiConfig, DatabaseConfig, GatewayConfig, MqttConfig
from gateway.paths import default_config_dir
from gateway.receivers.gat1400.config import Gat1400Config
from gateway.receivers.isapi.config import IsapiConfig


def demo_config(
    data_dir: Path,
    *,
    port: int,
    mqtt_port: int,
    cameras_file: Path,
    onvif_file: Path | None = None,
    client_id: str = "lianfang-demo",
    **overrides: Any,
) -> GatewayConfig:
    config_dir = default_config_dir()
    # The push receivers are on in the demo (off by default in production).
    overrides.setdefault("gat1400", Gat1400Config(enabled=True))
    overrides.setdefault("isapi", IsapiConfig(enabled=True))
    return GatewayConfig(
        data_dir=data_dir,
        mqtt=MqttConfig(host="127.0.0.1", port=mqtt_port, client_id=client_id),
        database=DatabaseConfig(url=f"sqlite:///{data_dir / 'lianfang.db'}"),
        api=ApiConfig(host="127.0.0.1", port=port),
        profiles_dir=config_dir / "profiles",
        sites_dir=config_dir / "sites",
        rules_dir=config_dir / "rules",
        onvif_file=onvif_file or config_dir / "onvif.yaml",
        cameras_file=cameras_file,
        routing_file=config_dir / "routing.yaml",
        grid_dir=config_dir / "grid",
        **overrides,
    )
