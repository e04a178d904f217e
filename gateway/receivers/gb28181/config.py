"""Configuration of the GB/T 28181 SIP server: the gateway section (``gb28181:`` in
lianfang.yaml) and the per-device block (``gb28181:`` under a device in sites/*.yaml).

Pydantic only, so the site registry and the gateway settings can import it without the server.
Passwords are never in YAML: ``password_env`` names an environment variable.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
GB_ID = re.compile(r"^[0-9]{20}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _env_name(value: str | None) -> str | None:
    if value is not None and not _ENV_NAME.match(value):
        raise ValueError("names an environment variable (letters, digits, _), not the password")
    return value


class Gb28181DeviceConfig(_Strict):
    """A GB/T 28181 camera or NVR; its device id is its 20-digit 国标编码."""

    password_env: str | None = Field(
        None,
        description="Environment variable holding this device's SIP password "
        "(unset: the server's password_env)",
    )

    _env = field_validator("password_env")(_env_name)


class Gb28181ServerConfig(_Strict):
    """The ``gb28181:`` section of lianfang.yaml."""

    enabled: bool = False
    host: str = Field("127.0.0.1", description="Address to listen on (0.0.0.0: every one)")
    port: int = Field(5060, ge=0, le=65535, description="UDP and TCP port (0: a free one)")
    udp: bool = True
    tcp: bool = True
    server_id: str = Field("34020000002000000001", description="SIP server id (20 digits)")
    domain: str = Field("3402000000", description="SIP domain and digest realm (10 digits)")
    password_env: str | None = Field(
        None, description="Environment variable with the password of devices without their own"
    )
    expires_min_s: int = Field(60, ge=10, le=86400, description="Shortest registration accepted")
    expires_max_s: int = Field(86400, ge=60, le=7 * 86400, description="Longest registration")
    keepalive_timeout_s: int = Field(
        180, ge=10, le=86400, description="Silence after which a device is offline (3 × 60 s)"
    )
    nonce_ttl_s: int = Field(300, ge=10, le=3600, description="Lifetime of a digest challenge")
    max_message_bytes: int = Field(65536, ge=1024, le=1024 * 1024)
    catalog_on_register: bool = Field(
        True, description="Ask a device for its channels (Catalog) when it registers"
    )
    ack_timeout_s: float = Field(
        10.0, gt=0, le=120, description="Longest wait for storage before answering 500"
    )

    _env = field_validator("password_env")(_env_name)

    @field_validator("server_id")
    @classmethod
    def _server_id(cls, value: str) -> str:
        if not GB_ID.match(value):
            raise ValueError("a GB/T 28181 id is 20 digits")
        return value

    @field_validator("domain")
    @classmethod
    def _domain(cls, value: str) -> str:
        if not re.fullmatch(r"[0-9]{10}", value):
            raise ValueError("a GB/T 28181 domain is 10 digits (the server id's first ten)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Gb28181ServerConfig:
        if self.enabled and not (self.udp or self.tcp):
            raise ValueError("enable udp, tcp or both")
        if self.expires_min_s > self.expires_max_s:
            raise ValueError("expires_min_s is larger than expires_max_s")
        return self
