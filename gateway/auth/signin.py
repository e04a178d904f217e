"""Everything around a password check: the throttle (``gateway.auth.throttle``), failed
sign-ins aggregated into audit rows (``gateway.auth.failures``) and the administrators'
alert on a brute-force pattern.

An alert is an audit row (``auth.bruteforce``), a warning in the log, and a call of
``on_alert`` (the running gateway pushes it to the administrators' consoles).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from gateway.audit.chain import AuditEntry, AuditLog
from gateway.auth.config import AuthConfig
from gateway.auth.failures import FailedLogins
from gateway.auth.throttle import Alert, LoginThrottle, ThrottleSettings

log = logging.getLogger(__name__)


class LoginThrottled(Exception):
    """Too many recent failures for this name from this address (or from it overall)."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__("登录失败次数过多，请稍后再试 / too many failed sign-ins, try again later")
        self.retry_after_s = retry_after_s


def throttle_settings(config: AuthConfig) -> ThrottleSettings:
    return ThrottleSettings(
        free=config.max_failed_logins,
        address_free=config.address_failures,
        account_free=config.account_failures,
        max_delay_s=config.lockout_minutes * 60,
        window_s=config.failure_window_minutes * 60,
        alert_after=config.alert_after_failures,
    )


class SignInGuard:
    def __init__(
        self,
        audit: AuditLog,
        config: AuthConfig,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.audit = audit
        self.clock = clock
        self.throttle = LoginThrottle(throttle_settings(config))
        self.failures = FailedLogins(config.failed_login_audit_minutes * 60)
        self.on_alert: Callable[[Alert], None] | None = None

    def configure(self, config: AuthConfig) -> None:
        """New settings (counts so far are kept)."""
        self.throttle.settings = throttle_settings(config)
        self.failures.interval_s = config.failed_login_audit_minutes * 60

    def check(self, name: str, address: str, *, target: str, role: str) -> None:
        """Raise ``LoginThrottled`` (and count the try) when this try must wait."""
        wait = self.throttle.wait(name, address)
        if wait > 0:
            self._count(name, address, target=target, role=role, throttled=True)
            raise LoginThrottled(wait)

    def failed(self, name: str, address: str, *, target: str, role: str) -> None:
        self._count(name, address, target=target, role=role, throttled=False)
        for alert in self.throttle.failed(name, address):
            self._alert(alert)

    def succeeded(self, name: str, address: str) -> None:
        self.throttle.succeeded(name, address)

    def unlock(self, name: str) -> int:
        return self.throttle.unlock(name)

    def flush(self, *, force: bool = False) -> int:
        """Write the aggregated rows of finished intervals (all with ``force``)."""
        return self._write(self.failures.due(self.clock(), force=force))

    def _count(self, name: str, address: str, *, target: str, role: str, throttled: bool) -> None:
        early = self.failures.add(
            name, address, self.clock(), target=target, role=role, throttled=throttled
        )
        self._write(early)

    def _write(self, rows: list[tuple[AuditEntry, datetime]]) -> int:
        if not rows:
            return 0
        with self.audit.transaction() as conn:
            for entry, at in rows:
                self.audit.append_in(conn, entry, at=at)
        return len(rows)

    def _alert(self, alert: Alert) -> None:
        where = f"user:{alert.key}" if alert.kind == "account" else f"address:{alert.key}"
        log.warning(
            "possible brute force against %s: %d failed sign-ins within the window "
            "(from %d address(es)); the account is not locked",
            where, alert.failures, alert.addresses,
        )  # fmt: skip
        self.audit.append(
            AuditEntry(
                actor="gateway",
                action="auth.bruteforce",
                target=where,
                source_ip=alert.key if alert.kind == "address" else "",
                after={"failures": alert.failures, "addresses": alert.addresses},
            ),
            at=self.clock(),
        )
        if self.on_alert is not None:
            try:
                self.on_alert(alert)
            except Exception:  # an alert channel's failure must not fail the sign-in
                log.exception("brute-force alert could not be pushed")
