"""Acknowledgements over MQTT: a console or app that received a notification on
``lianfang/notify/<kind>/<id>`` acknowledges it on ``lianfang/ack/<kind>/<id>`` (QoS 1)::

    {"notification_id": 42, "by": "王警官", "note": "已出警"}
    {"incident_id": 7}                      # the same, naming the incident

The topic says who acknowledges; the broker ACL lets each account publish only its own ack
topic (config/mosquitto/lianfang.acl), so the topic is the authenticated part and ``by``
is what the console says about its operator. The notification (or incident) must have been
addressed to that recipient, else the acknowledgement is refused. An accepted one is
recorded exactly like ``POST /api/notifications/{id}/ack`` (timeline, every row of that
recipient acknowledged; the first from a recipient asked to acknowledge takes the incident,
which stops its escalation: ``taking``) plus an audit row; a repeat records nothing.

Nothing a console sends can stop the stream: malformed payloads and refusals are counted per
reason, logged once per topic and reason, and audited; the message is then acknowledged to
the broker so it is not delivered again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from gateway.audit.chain import AuditEntry, AuditLog
from gateway.audit.middleware import redact
from gateway.incidents.service import AckOutcome, AckResult, IncidentService
from gateway.ingest.decode import Rejected, loads_strict
from gateway.notify.mqtt import ACK_PREFIX

log = logging.getLogger(__name__)

MAX_ACK_BYTES = 4096
MAX_ID = 2**62
MAX_LOGGED = 10_000  # distinct (topic, reason) pairs logged before we only count
AUDIT_ACTION = "MQTT ack"
STATUS = {  # as the HTTP acknowledgement would have answered
    AckOutcome.RECORDED: 200,
    AckOutcome.DUPLICATE: 200,
    AckOutcome.NOT_FOUND: 404,
    AckOutcome.NOT_ADDRESSED: 403,
}


class AckRejected(ValueError):
    """A malformed acknowledgement; ``reason`` is the counter key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AckMessage:
    recipient_kind: str
    recipient_id: str
    notification_id: int | None
    incident_id: int | None
    by: str = ""
    note: str = ""

    @property
    def recipient(self) -> str:
        return f"{self.recipient_kind}/{self.recipient_id}"

    @property
    def actor(self) -> str:
        return actor_of(self.recipient_kind, self.recipient_id)


def _id(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise AckRejected("bad_id", f"{key} must be a positive integer")
    return value


def _text(body: dict[str, Any], key: str, limit: int) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise AckRejected("bad_field", f"{key} must be a string of at most {limit} characters")
    return value.strip()


def parse_topic(topic: str, prefix: str = ACK_PREFIX) -> tuple[str, str]:
    """``(kind, id)`` of ``<prefix>/<kind>/<id>``, or ``AckRejected``."""
    head = prefix.rstrip("/") + "/"
    parts = topic[len(head) :].split("/") if topic.startswith(head) else []
    if len(parts) != 2 or not all(parts):
        raise AckRejected("bad_topic", f"not {head}<kind>/<id>")
    return parts[0], parts[1]


def actor_of(kind: str, recipient_id: str) -> str:
    """As the API records it: a person's id, else the console (``police-desk/beat-1``)."""
    return recipient_id if kind == "person" else f"{kind}/{recipient_id}"


def parse_ack(topic: str, payload: bytes, prefix: str = ACK_PREFIX) -> AckMessage:
    """The acknowledgement on ``topic``, or ``AckRejected`` saying why not."""
    kind, recipient_id = parse_topic(topic, prefix)
    if len(payload) > MAX_ACK_BYTES:
        raise AckRejected("oversized", f"{len(payload)} bytes (at most {MAX_ACK_BYTES})")
    try:
        body = loads_strict(payload.decode("utf-8"))
    except Rejected as exc:  # {"by": "a", "by": "b"}: which one acknowledged?
        raise AckRejected("duplicate_key", exc.detail) from None
    except (UnicodeDecodeError, ValueError):
        raise AckRejected("not_json", "the payload is not UTF-8 JSON") from None
    if not isinstance(body, dict):
        raise AckRejected("not_object", "the payload is not a JSON object")
    notification_id, incident_id = _id(body, "notification_id"), _id(body, "incident_id")
    if notification_id is None and incident_id is None:
        raise AckRejected("no_id", "names neither notification_id nor incident_id")
    return AckMessage(
        kind,
        recipient_id,
        notification_id,
        incident_id,
        by=_text(body, "by", 100),
        note=_text(body, "note", 500),
    )


@dataclass
class AckStats:
    received: int = 0
    recorded: int = 0
    duplicates: int = 0
    refused: Counter[str] = field(default_factory=Counter)  # per reason


class MqttAcks:
    """The ``on_ack`` handler of the MQTT notifier: parse, check, record, audit."""

    def __init__(
        self,
        service: IncidentService,
        *,
        audit: AuditLog | None = None,
        prefix: str = ACK_PREFIX,
    ) -> None:
        self.service = service
        self.audit = audit
        self.prefix = prefix
        self.stats = AckStats()
        self._logged: set[tuple[str, str]] = set()

    async def __call__(self, topic: str, payload: bytes) -> bool:
        """Handle one message; ``True`` when it may be acknowledged to the broker. The
        counters move last, once the acknowledgement and its audit row are written."""
        self.stats.received += 1
        try:
            ack = parse_ack(topic, payload, self.prefix)
        except AckRejected as exc:
            try:
                actor = actor_of(*parse_topic(topic, self.prefix))
            except AckRejected:
                actor = ""
            await self._audit(topic, actor, "", 400, _request(payload), {"refused": exc.reason})
            self._refuse(topic, exc.reason, str(exc))
            return True
        result: AckResult = await self.service.acknowledge_as(
            ack.recipient_kind,
            ack.recipient_id,
            notification_id=ack.notification_id,
            incident_id=ack.incident_id,
            actor=ack.actor,
            by=ack.by,
            note=ack.note,
        )
        answer: dict[str, Any] = {
            "outcome": result.outcome.value,
            "notification_id": result.notification_id,
            "incident_id": result.incident_id,
        }
        if result.detail:
            answer["detail"] = result.detail
        if result.took_incident:
            answer["took_incident"] = True  # the incident's acknowledgement: escalation stops
        await self._audit(
            topic, ack.actor, result.target, STATUS[result.outcome], _request(payload), answer
        )
        if result.outcome is AckOutcome.RECORDED:
            self.stats.recorded += 1
        elif result.outcome is AckOutcome.DUPLICATE:
            self.stats.duplicates += 1
        else:
            what = (
                f"notification {ack.notification_id}"
                if ack.notification_id is not None
                else f"incident {ack.incident_id}"
            )
            self._refuse(
                topic, result.outcome.value, result.detail or f"{what} for {ack.recipient}"
            )
        return True

    def _refuse(self, topic: str, reason: str, detail: str) -> None:
        self.stats.refused[reason] += 1
        key = (topic[:200], reason)
        if key in self._logged or len(self._logged) >= MAX_LOGGED:
            return
        self._logged.add(key)
        log.warning(
            "acknowledgement refused on %s: %s (%s); further ones like it are only counted",
            key[0],
            reason,
            detail,
        )

    async def _audit(
        self, topic: str, actor: str, role: str, status: int, request: Any, answer: Any
    ) -> None:
        if self.audit is None:
            return
        entry = AuditEntry(
            actor=actor or "anonymous",
            role=role,
            source_ip="mqtt",
            action=AUDIT_ACTION,
            target=topic,
            status=status,
            after={"request": request, "response": answer},
        )
        try:
            await asyncio.to_thread(self.audit.append, entry)
        except Exception:  # recorded or refused already; never lose the stream over it
            log.exception("audit: could not record the acknowledgement on %s", topic)


def _request(payload: bytes) -> Any:
    """The payload for the audit row, as the HTTP middleware keeps request bodies."""
    if len(payload) > MAX_ACK_BYTES:
        return {"bytes": len(payload)}
    try:
        return redact(json.loads(payload.decode("utf-8")))
    except (UnicodeDecodeError, ValueError):
        return {"bytes": len(payload)}
