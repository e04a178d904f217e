"""Tamper-evident audit log: ``AuditLog`` (append, verify), ``AuditEntry``, the key loader
and the HTTP middleware that records every state-changing request."""

from gateway.audit.chain import (
    GENESIS,
    AuditEntry,
    AuditKeyError,
    AuditLog,
    VerifyResult,
    load_audit_key,
)

__all__ = [
    "GENESIS",
    "AuditEntry",
    "AuditKeyError",
    "AuditLog",
    "VerifyResult",
    "load_audit_key",
]
