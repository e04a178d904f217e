"""SMS and voice calls behind a driver interface. The shipped driver only logs (masked):
a carrier driver (阿里云短信, 腾讯云, a local SMS modem) implements ``SmsDriver``.

Phone numbers are never logged or stored in clear: the grid keeps a keyed hash, a masked
form and the number encrypted with the personal-data key; a real driver decrypts the
recipient's number with ``gateway.grid.store.person_row`` + ``person_phone`` (or
``household_phones``) and must not log it."""

from __future__ import annotations

import logging
from typing import Literal, Protocol

from gateway.notify.base import Message, SendResult

log = logging.getLogger(__name__)


class SmsDriver(Protocol):
    async def deliver(
        self, mode: Literal["sms", "voice"], recipient: str, text: str
    ) -> SendResult: ...


class LogSmsDriver:
    """Logs what would be sent (recipient id, never a number) and keeps the last few."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str]] = []

    async def deliver(self, mode: Literal["sms", "voice"], recipient: str, text: str) -> SendResult:
        log.info("%s to %s: %s", mode, recipient, text)
        self.sent.append((mode, recipient, text))
        del self.sent[:-100]
        return SendResult.sent()


class SmsNotifier:
    def __init__(self, driver: SmsDriver, mode: Literal["sms", "voice"] = "sms") -> None:
        self.driver = driver
        self.mode: Literal["sms", "voice"] = mode

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def send(self, message: Message) -> SendResult:
        p = message.payload
        text = f"【联防】{p.get('severity', '')} {p.get('title_zh', '')} {p.get('address') or ''}"
        return await self.driver.deliver(self.mode, message.recipient, text.strip())
