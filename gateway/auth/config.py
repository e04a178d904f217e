"""Account and retention settings (``auth:`` and ``retention:`` in ``lianfang.yaml``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AuthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    session_hours: float = Field(12, gt=0, le=24 * 30, description="Console session lifetime")
    cookie_secure: bool = Field(
        True, description="Send the session cookie over HTTPS only (browsers allow localhost)"
    )
    max_failed_logins: int = Field(
        5,
        ge=1,
        le=100,
        description="Failures from one address for one name before its tries are delayed "
        "(1 s, 2 s, 4 s, … up to lockout_minutes); the account is never locked",
    )
    lockout_minutes: float = Field(
        15, gt=0, le=24 * 60, description="Longest delay between tries after failures"
    )
    address_failures: int = Field(
        20, ge=1, le=10_000, description="Failures from one address (any names) before delays"
    )
    account_failures: int = Field(
        10,
        ge=1,
        le=10_000,
        description="Failures for one name (any addresses) before the addresses that failed "
        "for it are delayed",
    )
    failure_window_minutes: float = Field(
        60, gt=0, le=7 * 24 * 60, description="Failures are forgotten after this quiet time"
    )
    alert_after_failures: int = Field(
        20, ge=1, le=100_000, description="Failures of one name or address that alert admins"
    )
    failed_login_audit_minutes: float = Field(
        10,
        gt=0,
        le=24 * 60,
        description="Failed sign-ins are one audit row per name, address and this interval",
    )
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
