"""SMS and voice calls behind a driver interface.

Two drivers: ``LogSmsDriver`` (the default: demo, closed networks without an SMS gateway)
only logs recipient ids; ``gateway.notify.sms_http.HttpSmsDriver`` posts to a generic HTTP
SMS gateway (a carrier's, a 阿里云/腾讯云 proxy, a local SMS modem), chosen with ``sms:`` in
``lianfang.yaml``.

Phone numbers are never logged or stored in clear: the grid keeps a keyed hash, a masked
form and the number encrypted with the personal-data key; a driver that needs the number
decrypts it at send time (``gateway.grid.store.person_row`` + ``person_phone``) and logs
the person id and the masked form only."""

from __future__ import annotations

import logging
from typing import Literal, Protocol

from gateway.notify.base import Message, SendResult

log = logging.getLogger(__name__)

Mode = Literal["sms", "voice"]

# What the text says before the title when the notification is not a first alarm (a cancel
# notice must not read like the alarm itself).
OCCASION_ZH = {
    "cancel": "已撤销",
    "escalation": "升级",
    "reminder": "提醒",
    "dispatch": "派单",
    "acknowledged": "已接警",  # someone took the incident: nobody else need acknowledge
}


class SmsDriver(Protocol):
    async def deliver(
        self, mode: Mode, recipient: str, text: str, *, message: Message | None = None
    ) -> SendResult:
        """Send ``text`` to ``recipient`` (``kind/id``, e.g. ``person/p-worker-4``);
        ``message`` is the outbox row being sent (ids for the gateway and the audit)."""
        ...


class LogSmsDriver:
    """Logs what would be sent (recipient id, never a number) and keeps the last few."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    async def deliver(
        self, mode: Mode, recipient: str, text: str, *, message: Message | None = None
    ) -> SendResult:
        log.info("%s to %s: %s", mode, recipient, text)
        self.sent.append((mode, recipient, text))
        del self.sent[:-100]
        return SendResult.sent()


def sms_text(payload: dict[str, object]) -> str:
    """``【联防】P1 一键报警… 示范路88号``; a cancel, escalation, reminder, dispatch or
    acknowledged notice says so after the tag."""
    occasion = OCCASION_ZH.get(str(payload.get("occasion") or ""), "")
    parts = [
        occasion,
        str(payload.get("severity") or ""),
        str(payload.get("title_zh") or ""),
        str(payload.get("address") or ""),
    ]
    return "【联防】" + " ".join(p for p in parts if p)


class SmsNotifier:
    def __init__(self, driver: SmsDriver, mode: Mode = "sms") -> None:
        self.driver = driver
        self.mode: Mode = mode

    async def start(self) -> None:
        start = getattr(self.driver, "start", None)
        if start is not None:
            await start()

    async def stop(self) -> None:
        stop = getattr(self.driver, "stop", None)
        if stop is not None:
            await stop()

    async def send(self, message: Message) -> SendResult:
        return await self.driver.deliver(
            self.mode, message.recipient, sms_text(message.payload), message=message
        )
