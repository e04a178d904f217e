"""One PullPoint subscription: create, pull, renew before it terminates, unsubscribe.

The camera's own CurrentTime/TerminationTime (from every answer) say how long is left, so the
camera's clock offset does not matter here. Failures are raised as :class:`SubscriptionLost`
with the reason the device-health event will carry; recreating is the manager's job.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import zeep.exceptions
from onvif.util import normalize_url

from device_adapters.onvif.client import GuardedCamera
from device_adapters.onvif.config import CameraConfig
from device_adapters.onvif.health import HealthReason, SubscriptionLost, classify

log = logging.getLogger(__name__)

PULLPOINT_NS = "http://www.onvif.org/ver10/events/wsdl/PullPointSubscription"
MESSAGE_LIMIT = 100
TRANSIENT = (aiohttp.ClientError, TimeoutError, OSError, zeep.exceptions.TransportError)


class PullPoint:
    def __init__(
        self,
        camera: GuardedCamera,
        config: CameraConfig,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self.camera = camera
        self.config = config
        self._now = monotonic or asyncio.get_running_loop().time
        self._sub: Any = None
        self._pull: Any = None
        self.expires_at: float | None = None  # monotonic
        self.remaining_at_last_answer: float | None = None
        self.last_answer: float = self._now()
        self.renewals = 0

    def _term(self) -> str:
        return f"PT{int(self.config.subscription_s)}S"

    def _track(self, current: Any, termination: Any) -> None:
        if isinstance(current, dt.datetime) and isinstance(termination, dt.datetime):
            left = (termination - current).total_seconds()
        else:  # camera did not say: assume what we asked for
            left = float(self.config.subscription_s)
        self.remaining_at_last_answer = left
        self.expires_at = self._now() + left

    def seconds_left(self) -> float | None:
        return None if self.expires_at is None else self.expires_at - self._now()

    async def create(self) -> None:
        events = await self.camera.create_events_service()
        result = await events.CreatePullPointSubscription({"InitialTerminationTime": self._term()})
        address = normalize_url(result.SubscriptionReference.Address._value_1)
        followed = self.camera.rewrite_url(address)
        if not followed:
            raise ValueError(f"camera gave no usable subscription address ({address!r})")
        self.camera.xaddrs[PULLPOINT_NS] = followed
        self._sub = await self.camera.create_subscription_service("PullPointSubscription")
        self._pull = await self.camera.create_pullpoint_service()
        self._track(result.CurrentTime, result.TerminationTime)
        self.last_answer = self._now()

    async def renew_if_due(self) -> bool:
        """Renew when less than ``renew_margin_s`` is left. True when renewed."""
        left = self.seconds_left()
        if left is None or left > self.config.renew_margin_s:
            return False
        try:
            result = await self._sub.Renew(self._term())
        except zeep.exceptions.Fault as exc:
            raise SubscriptionLost(
                HealthReason.RENEW_FAILED, f"camera refused Renew: {classify(exc)[1]}"
            ) from exc
        except TRANSIENT as exc:
            if (self.seconds_left() or 0) <= 0:
                raise SubscriptionLost(
                    HealthReason.RENEW_FAILED,
                    f"subscription ran out before it could be renewed: {classify(exc)[1]}",
                ) from exc
            log.info("renew of %s failed, retrying: %s", self.config.id, classify(exc)[1])
            return False
        self._track(result.CurrentTime, result.TerminationTime)
        self.renewals += 1
        return True

    async def pull(self) -> list[Any]:
        """One long-poll. Transient failures return [] until the subscription goes silent."""
        if (left := self.seconds_left()) is not None and left <= 0:
            raise SubscriptionLost(HealthReason.RENEW_FAILED, "subscription terminated unrenewed")
        try:
            result = await self._pull.PullMessages(
                {
                    "MessageLimit": MESSAGE_LIMIT,
                    "Timeout": dt.timedelta(seconds=self.config.pull_timeout_s),
                }
            )
        except zeep.exceptions.Fault as exc:
            # The camera no longer knows the subscription: rebooted or expired on its side.
            raise SubscriptionLost(
                HealthReason.SUBSCRIPTION_LOST, f"PullMessages refused: {classify(exc)[1]}"
            ) from exc
        except TRANSIENT as exc:
            silent_for = self._now() - self.last_answer
            if silent_for >= self.config.silent_after:
                raise SubscriptionLost(
                    HealthReason.SUBSCRIPTION_SILENT,
                    f"no answer to PullMessages for {silent_for:.0f} s: {classify(exc)[1]}",
                ) from exc
            log.debug("pull from %s failed (%s); retrying", self.config.id, classify(exc)[1])
            await asyncio.sleep(min(1.0, self.config.retry_min_s))
            return []
        self.last_answer = self._now()
        self._track(result.CurrentTime, result.TerminationTime)
        return list(result.NotificationMessage or [])

    async def close(self) -> None:
        if self._sub is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._sub.Unsubscribe(), self.config.request_timeout_s)
        self._sub = None
