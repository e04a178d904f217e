"""Account and retention settings (``auth:`` and ``retention:`` in ``lianfang.yaml``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AuthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    session_hours: float = Field(12, gt=0, le=24 * 30, description="Console session lifetime")
    cookie_secure: bool = Field(
        True, description="Send the session cookie over HTTPS only (browsers allow localhost)"
    )
    max_failed_logins: int = Field(5, ge=1, le=100, description="Failures before lockout")
    lockout_minutes: float = Field(15, gt=0, le=24 * 60)
    login_rate: str = Field("10/minute", description="Login attempts per client address")
    alarm_rate: str = Field("10/minute", description="Alarms raised per account")
    report_rate: str = Field("30/hour", description="Hazard reports per account")
    min_password_length: int = Field(12, ge=8, le=128)
    cors_origins: list[str] = Field(
        default_factory=list, description="Allowed browser origins; empty: CORS closed"
    )


class RetentionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    days: int = Field(
        30, ge=1, le=3650, description="Routine access/gate records and quarantine kept"
    )
    interval_minutes: float = Field(60, gt=0, le=24 * 60, description="How often to purge")
