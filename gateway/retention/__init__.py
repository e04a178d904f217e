"""Retention: routine records are purged after a configurable period (``RetentionJob``)."""

from gateway.retention.purge import PurgeResult, RetentionJob, purge

__all__ = ["PurgeResult", "RetentionJob", "purge"]
