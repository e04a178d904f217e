"""Camera sources: where a camera's stream and snapshot live, and how to log in.

One ``CameraConfig`` per camera in ``config/cameras.yaml`` (see ``gateway.live.config``).
Secrets never live in the file: ``password_env`` names an environment variable, or
``password_file`` a 0600 file, as for the MQTT broker.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from gateway.config.errors import ConfigError, ConfigErrors
from gateway.ids import DeviceId, Name


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def is_url(source: str) -> bool:
    return "://" in source


class CameraConfig(Strict):
    id: DeviceId = Field(..., description="Camera id; the device id in the site")
    name: Name = Field("", max_length=200)
    stream: str | None = Field(
        None,
        description="rtsp:// (or http://) stream URL, or a video file path (relative to the file)",
    )
    snapshot_url: str | None = Field(
        None, description="ONVIF GetSnapshotUri result: an http(s):// URL returning one JPEG"
    )
    auth: Literal["digest", "basic", "none"] = Field(
        "digest", description="HTTP auth for snapshot_url (ONVIF cameras use digest)"
    )
    username: str | None = None
    password_env: str | None = Field(None, description="Environment variable holding the password")
    password_file: Path | None = Field(None, description="0600 file holding the password")
    snapshot_timeout_s: float = Field(5.0, gt=0, le=60, description="Whole HTTP snapshot request")
    stream_timeout_s: float = Field(
        8.0, gt=0, le=120, description="Open the stream and decode one frame"
    )

    @field_validator("stream")
    @classmethod
    def _stream_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        base = (info.context or {}).get("base_dir")
        if value is None or is_url(value) or base is None or Path(value).is_absolute():
            return value
        return str((Path(base) / value).resolve())

    @field_validator("password_file")
    @classmethod
    def _password_path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        base = (info.context or {}).get("base_dir")
        if value is None or base is None or value.is_absolute():
            return value
        return (Path(base) / value).resolve()

    @field_validator("snapshot_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("snapshot_url must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _some_source(self) -> CameraConfig:
        if self.stream is None and self.snapshot_url is None:
            raise ValueError("a camera needs a stream, a snapshot_url, or both")
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        return self

    def password(self) -> str | None:
        """The camera password from the environment or the secret file (read when needed)."""
        key = f"cameras[{self.id}]"
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigErrors(
                    [
                        ConfigError(
                            "<env>",
                            f"{key}.password_env",
                            f"environment variable {self.password_env} is not set",
                        )
                    ]
                )
            return value
        if self.password_file:
            if self.password_file.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise ConfigErrors(
                    [
                        ConfigError(
                            str(self.password_file),
                            f"{key}.password_file",
                            "secret file must not be readable by group/others (chmod 600)",
                        )
                    ]
                )
            return self.password_file.read_text().strip()
        return None

    def is_file(self) -> bool:
        """True when the stream is a local file (looped for demos and tests)."""
        return self.stream is not None and not is_url(self.stream)

    def stream_source(self) -> str:
        """The stream to open: the file path, or the URL with the credentials put in (RTSP
        carries them in the URL). Never log this value."""
        if self.stream is None:
            raise ValueError(f"camera {self.id!r} has no stream")
        if not is_url(self.stream) or self.username is None:
            return self.stream
        parts = urlsplit(self.stream)
        if parts.username:
            return self.stream
        secret = self.password()
        userinfo = quote(self.username, safe="")
        if secret is not None:
            userinfo += ":" + quote(secret, safe="")
        return urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))


def redact(source: str) -> str:
    """A stream URL without its credentials, for logs."""
    if not is_url(source):
        return source
    parts = urlsplit(source)
    if "@" not in parts.netloc:
        return source
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))
