"""Why a push was refused: the HTTP status to answer with and the quarantine reason."""

from __future__ import annotations

from gateway.ingest.reasons import Reason


class Refused(Exception):
    """A push that cannot be taken. ``status`` is the HTTP answer (4xx), ``reason`` and
    ``detail`` go to the quarantine record."""

    def __init__(self, status: int, reason: Reason, detail: str) -> None:
        super().__init__(f"{status} {reason.value}: {detail}")
        self.status = status
        self.reason = reason
        self.detail = detail[:1000]
