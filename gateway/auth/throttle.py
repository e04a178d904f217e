"""Login throttling that slows a guesser down without locking the account's owner out.

Failed sign-ins are counted under three keys, each with its own growing delay:

- **account × address**: after ``free`` failures from one address for one account name,
  that address waits ``base · 2^(n − free)`` seconds (capped) before its next try *for that
  account*; the owner signing in from anywhere else is not slowed;
- **address**: after ``address_free`` failures from one address over all names (password
  spraying, name probing), the address waits likewise for every name;
- **account**: after ``account_free`` failures for one name from all addresses together (a
  distributed guess), every address that has itself failed for that name waits likewise;
  an address that has not failed for it (its owner) is never held back by this key.

Keys use the name as typed (lower-cased), whether or not the account exists, so unknown
and existing names get the same answers. A success clears its account × address key and
makes the pair *known* for ``known_s`` (30 days): a known pair is not held by the address
key (nor by the login rate limit per address, ``gateway.auth.routes``), so others failing
from a shared address (an office behind one NAT) do not shut the owner out. Counts
are forgotten after ``window_s`` without a failure. Nothing here ends a session or locks an
account; an administrator can clear an account's keys (``unlock``). When a name or an
address crosses ``alert_after`` failures in a window, ``failed`` returns an ``Alert`` once.

State is in memory, per process (like the ``limits`` rate limits), bounded in size.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAX_KEYS = 100_000


@dataclass(frozen=True, slots=True)
class ThrottleSettings:
    free: int = 3
    address_free: int = 20
    account_free: int = 10
    base_delay_s: float = 1.0
    max_delay_s: float = 900.0
    window_s: float = 3600.0
    alert_after: int = 20
    known_s: float = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class Alert:
    """A brute-force pattern: ``kind`` is ``account`` (many failures for one name) or
    ``address`` (many failures from one address)."""

    kind: str
    key: str
    failures: int
    addresses: int


@dataclass(slots=True)
class _Count:
    n: int = 0
    last: float = 0.0
    alerted: bool = False


class LoginThrottle:
    def __init__(
        self, settings: ThrottleSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._lock = threading.Lock()
        self._counts: OrderedDict[tuple[str, str], _Count] = OrderedDict()
        self._addresses: dict[str, set[str]] = {}  # account → addresses that failed for it
        # (account, address) pairs that signed in: exempt from the per-address keys
        self._known: OrderedDict[tuple[str, str], float] = OrderedDict()

    # -- reading --------------------------------------------------------------------------
    def _get(self, kind: str, key: str, now: float) -> _Count | None:
        found = self._counts.get((kind, key))
        if found is not None and now - found.last > self.settings.window_s:
            del self._counts[(kind, key)]
            if kind == "account":
                self._addresses.pop(key, None)
            return None
        return found

    def _until(self, count: _Count | None, free: int) -> float:
        """When the delay this key sets runs out (its newest failure plus the delay)."""
        if count is None or count.n < free:
            return 0.0
        s = self.settings
        return count.last + min(s.max_delay_s, s.base_delay_s * 2.0 ** min(count.n - free, 30))

    def known(self, account: str, address: str) -> bool:
        """Whether this account signed in from this address within ``known_s``: the owner
        at their usual place, whom another name's failures there must not shut out."""
        with self._lock:
            at = self._known.get((account, address))
            return at is not None and self.clock() - at <= self.settings.known_s

    def wait(self, account: str, address: str) -> float:
        """Seconds before this address may try this account name again (0: now)."""
        now = self.clock()
        s = self.settings
        known = self.known(account, address)
        with self._lock:
            pair = self._get("pair", f"{account}\n{address}", now)
            until = [self._until(pair, s.free)]
            if not known:  # others' failures from the same address do not hold the owner
                until.append(self._until(self._get("address", address, now), s.address_free))
            if pair is not None:  # only an address that failed for it meets the account key
                until.append(self._until(self._get("account", account, now), s.account_free))
        return max(0.0, max(until) - now)

    # -- recording ------------------------------------------------------------------------
    def _bump(self, kind: str, key: str, now: float) -> _Count:
        count = self._get(kind, key, now) or _Count()
        count.n += 1
        count.last = now
        self._counts[(kind, key)] = count
        self._counts.move_to_end((kind, key))
        while len(self._counts) > MAX_KEYS:
            (old_kind, old_key), _ = self._counts.popitem(last=False)
            if old_kind == "account":
                self._addresses.pop(old_key, None)
        return count

    def failed(self, account: str, address: str) -> list[Alert]:
        """Count one failure; the alerts it raises (each key alerts once per window)."""
        now = self.clock()
        alerts: list[Alert] = []
        with self._lock:
            self._bump("pair", f"{account}\n{address}", now)
            by_account = self._bump("account", account, now)
            seen = self._addresses.setdefault(account, set())
            if len(seen) < 10_000:
                seen.add(address)
            by_address = self._bump("address", address, now)
            for kind, key, count, n_addr in (
                ("account", account, by_account, len(seen)),
                ("address", address, by_address, 1),
            ):
                if count.n >= self.settings.alert_after and not count.alerted:
                    count.alerted = True
                    alerts.append(Alert(kind, key, count.n, n_addr))
        return alerts

    def succeeded(self, account: str, address: str) -> None:
        with self._lock:
            self._counts.pop(("pair", f"{account}\n{address}"), None)
            self._known[(account, address)] = self.clock()
            self._known.move_to_end((account, address))
            while len(self._known) > MAX_KEYS:
                self._known.popitem(last=False)

    def unlock(self, account: str) -> int:
        """Forget every failure recorded for this account name; returns how many keys."""
        with self._lock:
            keys = [
                k
                for k in self._counts
                if (k[0] == "account" and k[1] == account)
                or (k[0] == "pair" and k[1].split("\n", 1)[0] == account)
            ]
            for k in keys:
                del self._counts[k]
            self._addresses.pop(account, None)
        return len(keys)
