"""The notifier interface: ``send(message) → SendResult``.

``SendResult.retryable`` says whether trying again may help (timeouts, 5xx, 429, a broker
that is away) or not (4xx, a malformed address); ``retry_after_s`` passes on a receiver's
``Retry-After``. Notifiers never raise for delivery problems: they return a result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class IncidentPlace:
    """Where an incident is and who reported it: what live console viewers are filtered on
    (``Scope.sees_incident``), carried beside a notification so no viewer needs a query."""

    cell: str | None = None
    site: str | None = None
    reporter: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    notification_id: int
    incident_id: int
    channel: str
    recipient_kind: str
    recipient_id: str
    recipient_name: str
    payload: dict[str, Any] = field(default_factory=dict)
    place: IncidentPlace | None = None  # not sent: for scoping the console push

    @property
    def recipient(self) -> str:
        return f"{self.recipient_kind}/{self.recipient_id}"


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool
    retryable: bool = False
    error: str = ""
    retry_after_s: float | None = None

    @classmethod
    def sent(cls) -> SendResult:
        return cls(True)

    @classmethod
    def retry(cls, error: str, retry_after_s: float | None = None) -> SendResult:
        return cls(False, True, error[:500], retry_after_s)

    @classmethod
    def fail(cls, error: str) -> SendResult:
        return cls(False, False, error[:500])


class Notifier(Protocol):
    """One delivery integration."""

    async def send(self, message: Message) -> SendResult: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def notification_body(message: Message) -> dict[str, Any]:
    """What every channel sends: the payload, ``recipient`` the object ``{kind, id, name}``
    (from the outbox row when the payload lacks it) and ``recipient_key`` (``kind/id``),
    which the payload cannot overwrite."""
    body = dict(message.payload)
    if not isinstance(body.get("recipient"), dict):
        body["recipient"] = {
            "kind": message.recipient_kind,
            "id": message.recipient_id,
            "name": message.recipient_name,
        }
    body["recipient_key"] = message.recipient
    return body
