"""Configuration of the SIA DC-09 receiver: the gateway section (``sia:`` in lianfang.yaml)
and the per-panel block of a registered device (``sia:`` under a device in sites/*.yaml).

Pydantic only, so the site registry and the gateway settings can import it without the
receiver itself. Keys are never in YAML: ``key_env`` names an environment variable.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
ACCOUNT = re.compile(r"^[0-9A-Fa-f]{3,16}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def point_key(value: str) -> str:
    """Zone and user numbers compare as numbers: ``015`` and ``15`` are the same zone."""
    text = value.strip()
    return str(int(text)) if text.isdigit() else text.upper()


class SiaPanelConfig(_Strict):
    """An alarm panel's DC-09 account, on its device in the site registry."""

    account: str = Field(..., description="DC-09 account number (3-16 hex digits)")
    key_env: str | None = Field(
        None,
        description="Environment variable holding the AES key: 32, 48 or 64 hex digits, or "
        "16, 24 or 32 characters (hex: or ascii: in front says which); unset: the panel "
        "reports unencrypted",
    )
    zones: dict[str, str] = Field(
        default_factory=dict, description="Zone number → household id (十户联防 households)"
    )
    users: dict[str, str] = Field(
        default_factory=dict, description="User number → household id (open/close, duress)"
    )
    null_interval_s: int | None = Field(
        None,
        ge=10,
        le=7 * 86400,
        description="NULL (link test) interval the panel is set to; a missed one makes the "
        "panel offline. Unset: not supervised",
    )

    @field_validator("account")
    @classmethod
    def _account(cls, value: str) -> str:
        if not ACCOUNT.match(value):
            raise ValueError("a DC-09 account is 3 to 16 hex digits")
        return value.upper()

    @field_validator("key_env")
    @classmethod
    def _env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("names an environment variable (letters, digits, _), not the key")
        return value

    @field_validator("zones", "users")
    @classmethod
    def _points(cls, value: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for number, household in value.items():
            key = point_key(str(number))
            if not key or len(key) > 8 or not household:
                raise ValueError(f"bad entry {number!r}: {household!r}")
            if key in out:
                raise ValueError(f"{number!r} appears twice")
            out[key] = household
        return out

    def household_of(self, zone: str | None, user: str | None) -> str | None:
        if zone is not None and (found := self.zones.get(point_key(zone))):
            return found
        if user is not None:
            return self.users.get(point_key(user))
        return None


class SiaReceiverConfig(_Strict):
    """The ``sia:`` section of lianfang.yaml: where the receiver listens and how strict it is."""

    enabled: bool = False
    host: str = Field("127.0.0.1", description="Address to listen on (0.0.0.0: every one)")
    port: int = Field(12000, ge=0, le=65535, description="TCP and UDP port (0: a free one)")
    tcp: bool = True
    udp: bool = True
    timestamp_ahead_s: int = Field(
        20, ge=1, le=3600, description="How far a message's timestamp may be ahead of ours"
    )
    timestamp_behind_s: int = Field(
        40, ge=1, le=3600, description="How far a message's timestamp may lag behind ours"
    )
    require_timestamp: bool = Field(
        False, description="Refuse unencrypted messages without a timestamp (encrypted: always)"
    )
    duplicate_window_s: int = Field(
        300, ge=10, le=86400, description="A message repeated within this time is a retransmission"
    )
    ack_timeout_s: float = Field(
        10.0,
        gt=0,
        le=120,
        description="Longest wait for storage before the receiver stays silent (the panel "
        "then repeats the message)",
    )
    null_grace_s: int = Field(
        30, ge=0, le=3600, description="Slack after a NULL interval before the panel is offline"
    )
    idle_timeout_s: int = Field(300, ge=5, le=86400, description="TCP connection idle limit")
    max_connections: int = Field(512, ge=1, le=65535)

    @model_validator(mode="after")
    def _transport(self) -> SiaReceiverConfig:
        if self.enabled and not (self.tcp or self.udp):
            raise ValueError("enable tcp, udp or both")
        return self
