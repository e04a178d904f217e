"""The HTTP API: health, devices, events (stored and live), quarantine, offline docs.

Public surface: ``create_app``, the ``Runtime`` protocol the gateway implements, and the
health models it returns.
"""

from typing import TYPE_CHECKING, Any

from gateway.api.runtime import Runtime
from gateway.health import (
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

if TYPE_CHECKING:
    from gateway.api.app import create_app


def __getattr__(name: str) -> Any:
    # The app imports every route, and the routes import gateway.auth.guards, which imports
    # gateway.api.deps: loading the app with the package made importing the guards first a
    # circular import. It is loaded when asked for.
    if name == "create_app":
        from gateway.api.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
