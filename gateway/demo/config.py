"""The demo's gateway configuration: the shipped config folder, SQLite and keys in a data
folder, an embedded broker on loopback. Used by ``lianfang demo`` and the browser tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.config.settings import ApiConfig, DatabaseConfig, GatewayConfig, MqttConfig
from gateway.paths import default_config_dir
from gateway.receivers.gat1400.config import Gat1400Config
from gateway.receivers.gb28181.config import Gb28181ServerConfig
from gateway.receivers.isapi.config import IsapiConfig
from gateway.receivers.sia.config import SiaReceiverConfig

# The demo's GB/T 28181 SIP server (the demo camera registers with it).
SIP_SERVER_ID = "31010800002000000001"
SIP_DOMAIN = "3101080000"


def demo_receivers(sia_port: int, sip_port: int, password_env: str) -> dict[str, Any]:
    """``sia`` and ``gb28181`` sections for the demo: both on loopback, the demo devices'
    password from ``password_env``."""
    return {
        "sia": SiaReceiverConfig(enabled=True, host="127.0.0.1", port=sia_port),
        "gb28181": Gb28181ServerConfig(
            enabled=True,
            host="127.0.0.1",
            port=sip_port,
            server_id=SIP_SERVER_ID,
            domain=SIP_DOMAIN,
            password_env=password_env,
        ),
    }


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
