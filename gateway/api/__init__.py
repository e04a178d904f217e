"""The HTTP API: health, devices, events (stored and live), quarantine, offline docs.

Public surface: ``create_app``, the ``Runtime`` protocol the gateway implements, and the
health models it returns.
"""

from gateway.api.app import create_app
from gateway.api.runtime import Runtime
from gateway.api.schemas import (
    BrokerHealth,
    DatabaseHealth,
    HealthReport,
    IngestHealth,
    WriterHealth,
)

__all__ = [
    "BrokerHealth",
    "DatabaseHealth",
    "HealthReport",
    "IngestHealth",
    "Runtime",
    "WriterHealth",
    "create_app",
]
