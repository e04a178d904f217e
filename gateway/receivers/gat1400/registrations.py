"""Who is registered: device id → source address and last sign of life, in memory.

A registration lapses without a keepalive for ``timeout_s``; after a restart of the gateway
every device registers again (its next post is answered 401, which GA/T 1400 devices take
as the cue to register). A registration is bound to the address it came from: another
address naming the same device in ``User-Identify`` is not that device.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(slots=True)
class Registration:
    device_id: str
    address: str
    registered_at: float
    last_seen: float


class Registrations:
    def __init__(self, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout_s = timeout_s
        self._clock = clock
        self._by_device: dict[str, Registration] = {}

    def register(self, device_id: str, address: str) -> None:
        now = self._clock()
        self._by_device[device_id] = Registration(device_id, address, now, now)

    def unregister(self, device_id: str) -> bool:
        return self._by_device.pop(device_id, None) is not None

    def live(self, device_id: str, address: str) -> bool:
        """Registered, not lapsed, and from this address."""
        found = self._by_device.get(device_id)
        if found is None:
            return False
        if self._clock() - found.last_seen > self.timeout_s:
            del self._by_device[device_id]
            return False
        return found.address == address

    def touch(self, device_id: str, address: str) -> bool:
        """A keepalive (or any accepted call): True when the registration is live."""
        if not self.live(device_id, address):
            return False
        self._by_device[device_id].last_seen = self._clock()
        return True

    def __len__(self) -> int:
        return len(self._by_device)
