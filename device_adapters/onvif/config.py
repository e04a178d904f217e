"""ONVIF camera configuration (``config/onvif.yaml``): strict, secrets from the environment or a
0600 file, errors that name the file and the key path."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from gateway.config.errors import ConfigError, ConfigErrors
from gateway.config.loader import load_model
from gateway.ids import DeviceId, Id


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CameraConfig(_Strict):
    """One ONVIF camera (or ONVIF access controller)."""

    id: DeviceId = Field(..., description="Device id in the site registry")
    site: Id
    kind: Literal["perimeter", "access"] = Field(
        "perimeter", description="Device kind for health events; door topics always give access"
    )
    url: str | None = Field(None, description="http(s)://host[:port] of the ONVIF device service")
    host: str | None = Field(None, description="Host, when `url` is not given")
    port: int = Field(80, ge=1, le=65535)
    username: str = Field("admin", max_length=64)
    password_env: str | None = Field(None, description="Environment variable holding the password")
    password_file: Path | None = Field(None, description="0600 file holding the password")
    allow_foreign_hosts: bool = Field(
        False,
        description="Follow addresses the camera advertises on other hosts (else rewritten "
        "to the configured host)",
    )
    enabled: bool = True
    subscription_s: int = Field(
        300, ge=2, le=86_400, description="PullPoint subscription length asked for (renewed)"
    )
    renew_margin_s: float = Field(
        60, gt=0, description="Renew this long before the subscription terminates"
    )
    pull_timeout_s: float = Field(
        20, gt=0, le=120, description="Long-poll time of one PullMessages call"
    )
    request_timeout_s: float = Field(
        10, gt=0, le=120, description="Connect/read limit of any other request"
    )
    silent_after_s: float | None = Field(
        None, gt=0, description="No pull answered this long: subscription silent (default 3x poll)"
    )
    retry_min_s: float = Field(1.0, gt=0, description="First reconnect delay")
    retry_max_s: float = Field(60.0, gt=0, description="Longest reconnect delay")
    max_response_bytes: int = Field(
        1024 * 1024, ge=4096, le=64 * 1024 * 1024, description="Larger SOAP answers are refused"
    )

    @field_validator("password_file")
    @classmethod
    def _resolve(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        base = (info.context or {}).get("base_dir")
        if value is not None and base is not None and not value.is_absolute():
            return (Path(base) / value).resolve()
        return value

    @model_validator(mode="after")
    def _check(self) -> CameraConfig:
        if (self.url is None) == (self.host is None):
            raise ValueError("give exactly one of `url` or `host`")
        if self.url is not None:
            parts = urlsplit(self.url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("`url` must be http(s)://host[:port]")
        if self.renew_margin_s >= self.subscription_s:
            raise ValueError("renew_margin_s must be shorter than subscription_s")
        if self.renew_margin_s <= self.pull_timeout_s:
            raise ValueError("renew_margin_s must be longer than pull_timeout_s")
        if self.password_env and self.password_file:
            raise ValueError("give one of password_env or password_file")
        return self

    @property
    def scheme(self) -> str:
        return urlsplit(self.url).scheme if self.url else "http"

    @property
    def address(self) -> str:
        """Configured host (the only one followed unless allow_foreign_hosts)."""
        if self.url is not None:
            return urlsplit(self.url).hostname or ""
        return self.host or ""

    @property
    def service_port(self) -> int:
        if self.url is not None:
            parts = urlsplit(self.url)
            return parts.port or (443 if parts.scheme == "https" else 80)
        return self.port

    @property
    def silent_after(self) -> float:
        return self.silent_after_s or 3 * (self.pull_timeout_s + self.request_timeout_s)

    def password(self, file: str = "onvif.yaml") -> str | None:
        key = f"cameras[{self.id}]"
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigErrors(
                    [ConfigError(file, f"{key}.password_env", f"{self.password_env} is not set")]
                )
            return value
        if self.password_file:
            try:
                mode = self.password_file.stat().st_mode
                if mode & (stat.S_IRWXG | stat.S_IRWXO):
                    raise ConfigErrors(
                        [ConfigError(str(self.password_file), f"{key}.password_file",
                                     "secret file must not be readable by group/others (chmod 600)")]
                    )  # fmt: skip
                return self.password_file.read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigErrors(
                    [ConfigError(str(self.password_file), f"{key}.password_file", str(exc))]
                ) from exc
        return None


class CamerasConfig(_Strict):
    """Top level of ``onvif.yaml``."""

    cameras: list[CameraConfig] = []

    @field_validator("cameras")
    @classmethod
    def _unique(cls, cameras: list[CameraConfig]) -> list[CameraConfig]:
        seen: set[str] = set()
        for cam in cameras:
            if cam.id in seen:
                raise ValueError(f"camera id {cam.id!r} appears twice")
            seen.add(cam.id)
        return cameras


def load_cameras(path: Path) -> CamerasConfig:
    """Load and validate ``onvif.yaml``; errors carry file and key path."""
    return load_model(CamerasConfig, path)
