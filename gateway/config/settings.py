"""The gateway's own configuration file (``lianfang.yaml``), strict like Frigate's.

Secrets never live in the file: ``password_env`` names an environment variable, or
``password_file`` a 0600 file. Relative paths are resolved against the file's folder.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from gateway.audit.config import AuditConfig
from gateway.auth.config import AuthConfig, RetentionConfig
from gateway.cluster.config import ClusterConfig
from gateway.config.errors import ConfigError, ConfigErrors
from gateway.config.loader import load_model
from gateway.notify.template import TemplateError, placeholders
from gateway.receivers.gat1400.config import Gat1400Config
from gateway.receivers.gb28181.config import Gb28181ServerConfig
from gateway.receivers.isapi.config import IsapiConfig
from gateway.receivers.sia.config import SiaReceiverConfig


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _resolve(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        return (Path(base) / value).resolve()
    return value


class TlsConfig(Strict):
    enabled: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure_skip_verify: bool = Field(
        False, description="Only for lab brokers with self-signed certs"
    )

    _paths = field_validator("ca_file", "cert_file", "key_file")(
        lambda v, info: _resolve(v, info) if v is not None else None
    )


class MqttConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    client_id: str = Field(
        "lianfang-gateway",
        min_length=1,
        max_length=64,
        description="Stable id: the broker keeps the session (and queued messages) under it",
    )
    username: str | None = None
    password_env: str | None = Field(None, description="Environment variable holding the password")
    password_file: Path | None = Field(None, description="0600 file holding the password")
    tls: TlsConfig = TlsConfig()
    keepalive_s: int = Field(30, ge=5, le=3600)
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    max_inflight: int = Field(
        200, ge=1, le=65535, description="Unacknowledged QoS 1 messages in flight"
    )

    _pw = field_validator("password_file")(lambda v, info: _resolve(v, info) if v else None)

    def password(self) -> str | None:
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigErrors(
                    [
                        ConfigError(
                            "<env>",
                            "mqtt.password_env",
                            f"environment variable {self.password_env} is not set",
                        )
                    ]
                )
            return value
        if self.password_file:
            mode = self.password_file.stat().st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigErrors(
                    [
                        ConfigError(
                            str(self.password_file),
                            "mqtt.password_file",
                            "secret file must not be readable by group/others (chmod 600)",
                        )
                    ]
                )
            return self.password_file.read_text().strip()
        return None


class DatabaseConfig(Strict):
    url: str = Field(
        "sqlite:///data/lianfang.db",
        description="SQLAlchemy URL; sqlite:/// (default, WAL) or postgresql+psycopg://",
    )
    # Each event touches a leaf page of the events indexes clustered by device, so a commit
    # writes about one page per device heard since the last one, whatever the batch size:
    # larger batches under load cost far less per event (measured: 500 events per commit
    # wrote 6.6 KB of WAL per event, 2,000 wrote 3.1 KB). The interval bounds the wait.
    batch_size: int = Field(
        2000, ge=1, le=10_000, description="Events per write transaction at most"
    )
    batch_interval_ms: int = Field(
        200, ge=1, le=5_000, description="Longest wait before a partial batch is written"
    )
    live_push: bool | None = Field(
        None,
        description="Share live console pushes (events, notifications) with the other workers "
        "on this database through PostgreSQL LISTEN/NOTIFY; default: on for PostgreSQL, "
        "off for SQLite (where it cannot be on)",
    )

    @property
    def shares_live_pushes(self) -> bool:
        """``live_push``, defaulted by the database: only PostgreSQL has LISTEN/NOTIFY."""
        postgres = self.url.startswith("postgresql")
        return postgres and (self.live_push is None or self.live_push)


class IngestConfig(Strict):
    max_payload_bytes: int = Field(64 * 1024, ge=256, le=16 * 1024 * 1024)
    max_json_depth: int = Field(32, ge=2, le=512)
    accept_unknown_devices: bool = Field(
        False,
        description="Store events from devices not in the site registry (else quarantine them)",
    )
    quarantine_raw_bytes: int = Field(
        4096, ge=0, le=1024 * 1024, description="Raw bytes kept per quarantined message"
    )
    # The bounded quarantine (gateway/ingest/quarantine.py): every message is counted; rows
    # are kept up to these rates per clock minute, and the table is capped in size.
    quarantine_per_source_per_minute: int = Field(
        10, ge=1, le=100_000, description="Rows kept per reason and device (else topic) a minute"
    )
    quarantine_per_reason_per_minute: int = Field(
        100, ge=1, le=1_000_000, description="Rows kept per reason a minute"
    )
    quarantine_per_minute: int = Field(
        200, ge=1, le=1_000_000, description="Rows kept a minute, all reasons together"
    )
    quarantine_max_bytes: int = Field(
        16 * 1024 * 1024,
        ge=64 * 1024,
        le=64 * 1024**3,
        description="Size of the quarantine table (raw, detail, topic); the oldest rows go first",
    )
    unregistered_panics_per_minute: int = Field(
        30,
        ge=1,
        le=10_000,
        description="Incidents per site a minute for panics of unregistered devices; "
        "past it, presses are coalesced into one flood incident",
    )


class RulesConfig(Strict):
    """How the rules treat time; ``lianfang rules test --config`` reads the same values."""

    late_tolerance_s: float = Field(
        30.0,
        ge=0,
        le=86400,
        description="An event that arrived this much after its device time, or is this much "
        "older than the newest seen, is late: only panic and absence rules use it",
    )


class ApiConfig(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Reverse proxies (addresses or networks) whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; empty: the peer address is the client's",
    )

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not an IP address or network") from exc
        return value


# Placeholders an SMS gateway's body template may use (gateway.notify.sms_http).
SMS_PLACEHOLDERS = frozenset(
    {"phone", "text", "mode", "recipient", "notification_id", "incident_id"}
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")


class HttpSmsConfig(Strict):
    """A generic HTTP SMS gateway (a carrier's, a 阿里云/腾讯云 proxy, a local SMS-modem box):
    one JSON POST per message, the recipient's number decrypted at send time."""

    url: str = Field(..., description="http(s)://host[:port]/path of the gateway's send call")
    method: Literal["POST"] = "POST"
    body: dict[str, Any] = Field(
        default_factory=lambda: {
            "to": "{phone}",
            "text": "{text}",
            "type": "{mode}",
            "id": "{notification_id}",
        },
        description="JSON body template; placeholders {phone} {text} {mode} {recipient} "
        "{notification_id} {incident_id}",
    )
    auth_env: str | None = Field(
        None, description="Environment variable holding the secret (never in this file)"
    )
    auth_header: str | None = Field(
        None, description="Header carrying the secret (Authorization when auth_env is set)"
    )
    auth_scheme: str = Field("", max_length=32, description='Prefix of the secret, e.g. "Bearer"')
    timeout_s: float = Field(5.0, gt=0, le=60)
    tls_verify: bool = Field(True, description="Check the gateway's certificate (https)")
    ca_file: Path | None = Field(None, description="CA bundle for a private gateway (https)")
    max_attempts: int = Field(6, ge=1, le=50, description="Then the notification is dead")
    backoff_s: float = Field(1.0, gt=0, le=600, description="First retry delay (doubles)")
    backoff_max_s: float = Field(300.0, gt=0, le=86400)

    _ca = field_validator("ca_file")(lambda v, info: _resolve(v, info) if v is not None else None)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("no credentials in the URL: name them with auth_env")
        if "{" in value or "}" in value:
            raise ValueError("no placeholders in the URL: the number goes in the body only")
        try:
            parts.port  # noqa: B018 - raises for a bad port
        except ValueError as exc:
            raise ValueError(f"bad port: {exc}") from exc
        return value

    @field_validator("body")
    @classmethod
    def _body(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            used = placeholders(value, SMS_PLACEHOLDERS)
        except TemplateError as exc:
            raise ValueError(str(exc)) from exc
        missing = {"phone", "text"} - used
        if missing:
            raise ValueError(
                "the template must use " + " and ".join(f"{{{m}}}" for m in sorted(missing))
            )
        return value

    @field_validator("auth_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError(
                "names an environment variable (letters, digits, _), not the secret itself"
            )
        return value

    @field_validator("auth_header", "auth_scheme")
    @classmethod
    def _needs_env(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.field_name == "auth_header" and value is not None and not _HEADER_NAME.match(value):
            raise ValueError("not an HTTP header name")
        if value and info.data.get("auth_env", "invalid") is None:
            raise ValueError(
                "needs auth_env: the name of the environment variable holding the secret"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> HttpSmsConfig:
        if self.ca_file is not None and not self.tls_verify:
            raise ValueError("ca_file has no effect with tls_verify: false")
        if urlsplit(self.url).scheme == "http" and (
            self.ca_file is not None or not self.tls_verify
        ):
            raise ValueError("ca_file and tls_verify apply to https:// URLs only")
        return self


class SmsConfig(Strict):
    """How SMS and voice notifications leave the gateway. ``log`` (the default: demo, closed
    networks without a gateway) only logs recipient ids; ``http`` posts to ``http``."""

    driver: Literal["log", "http"] = "log"
    http: HttpSmsConfig | None = None

    @model_validator(mode="after")
    def _driver(self) -> SmsConfig:
        if self.driver == "http" and self.http is None:
            raise ValueError("driver http needs an http: section (url, body, …)")
        if self.driver == "log" and self.http is not None:
            raise ValueError(
                "an http: section is only used with driver: http (the log driver sends nothing)"
            )
        return self


class GatewayConfig(Strict):
    """Top-level ``lianfang.yaml``."""

    # Defaults are validated too, so relative default folders resolve against the file.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    data_dir: Path = Path("data")
    timezone: str = "Asia/Shanghai"
    mqtt: MqttConfig = MqttConfig()
    database: DatabaseConfig = DatabaseConfig()
    cluster: ClusterConfig = Field(
        ClusterConfig(), description="Several workers on one PostgreSQL (off by default)"
    )
    ingest: IngestConfig = IngestConfig()
    rules: RulesConfig = RulesConfig()
    api: ApiConfig = ApiConfig()
    auth: AuthConfig = AuthConfig()
    audit: AuditConfig = Field(AuditConfig(), description="Audit key file and checkpoints")
    retention: RetentionConfig = RetentionConfig()
    sms: SmsConfig = Field(SmsConfig(), description="SMS/voice driver (default: log only)")
    sia: SiaReceiverConfig = Field(
        SiaReceiverConfig(), description="SIA DC-09 alarm-panel receiver (off by default)"
    )
    gb28181: Gb28181ServerConfig = Field(
        Gb28181ServerConfig(), description="GB/T 28181 SIP server (off by default)"
    )
    gat1400: Gat1400Config = Field(
        Gat1400Config(), description="GA/T 1400 视图库 server under /VIID (off by default)"
    )
    isapi: IsapiConfig = Field(
        IsapiConfig(), description="Hikvision ISAPI HTTP push listener (off by default)"
    )
    profiles_dir: Path = Path("profiles")
    sites_dir: Path = Path("sites")
    rules_dir: Path = Path("rules")
    cameras_file: Path = Field(
        Path("cameras.yaml"), description="Cameras, evidence, fences, live view"
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    onvif_file: Path = Field(Path("onvif.yaml"), description="ONVIF event sources (optional)")
    routing_file: Path = Field(Path("routing.yaml"), description="Incident routing tree")
    grid_dir: Path = Field(Path("grid"), description="Grid, people and households (imported once)")

    _dirs = field_validator(
        "data_dir",
        "profiles_dir",
        "sites_dir",
        "rules_dir",
        "cameras_file",
        "onvif_file",
        "routing_file",
        "grid_dir",
    )(_resolve)

    @model_validator(mode="after")
    def _tz(self) -> GatewayConfig:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown timezone {self.timezone!r}") from exc
        return self

    def sqlite_url_resolved(self) -> str:
        """Relative SQLite paths live under the data directory's parent (the config folder)."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
            return prefix + str((self.data_dir / Path(url[len(prefix) :]).name).resolve())
        return url


def load_gateway_config(path: Path) -> GatewayConfig:
    return load_model(GatewayConfig, path)
