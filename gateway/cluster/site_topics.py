"""Which topics a site's MQTT session subscribes to, and its stable client id.

A topic belongs to a site when it says so (docs/cluster.md, "Per-site MQTT sessions"):

- a pattern with a ``{site}`` level (``lianfang/{site}/{device}/event``): the site's session
  subscribes with the site filled in (``lianfang/A/+/event``);
- a pattern with a ``{device}`` level but no ``{site}`` (``zigbee2mqtt/{device}``,
  ``hikvision/{device}/event``): the site's session subscribes to each of the site's
  registered devices (``zigbee2mqtt/door-1``), since the device id names its site — with the
  patterns of the device's ``profile`` only, when its registry entry names one;
- anything else (``frigate/events``, a Python adapter's filters) carries no site.

The *site-less* session (``SITELESS``, owned like a site by one worker) subscribes to every
adapter's filters, as the single-process consumer does, and reads only the topics no site
session takes: site-less topics, and topics of sites or devices missing from the registry —
so an unregistered device's panic is still raised (gateway.ingest.unregistered). The topics a
site session takes reach it too; it acknowledges them unread (``SiteTopics.siteless_accepts``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from device_adapters.base import Adapter
from device_adapters.profiles.topics import TopicPattern
from gateway.config.sites import SiteRegistry

# Not a valid site id (gateway.ids: ids start with a letter or digit): never a real site's.
SITELESS = "~siteless"

_PLACEHOLDER = re.compile(r"^\{([a-z_][a-z0-9_]*)(:#)?\}$")


def session_client_id(prefix: str, site: str) -> str:
    """The stable MQTT client id of ``site``'s session: the same on every worker, so the
    broker's queue for it outlives any one owner. Site ids use ``[A-Za-z0-9_.:@~-]`` only
    (gateway.ids), which every broker takes in a client id."""
    if site == SITELESS:
        return f"{prefix}-siteless"
    return f"{prefix}-site-{site}"


def fill(pattern: str, values: dict[str, str]) -> str:
    """A pattern as an MQTT filter: the named levels in ``values`` filled in, the other
    named levels ``+`` (or ``#`` for ``{name:#}``)."""
    levels = []
    for level in pattern.split("/"):
        m = _PLACEHOLDER.match(level)
        if m is None:
            levels.append(level)
        elif m.group(1) in values:
            levels.append(values[m.group(1)])
        else:
            levels.append("#" if m.group(2) else "+")
    return "/".join(levels)


def _names(pattern: TopicPattern) -> set[str]:
    return {m.group(1) for level in pattern.pattern.split("/") if (m := _PLACEHOLDER.match(level))}


@dataclass(frozen=True)
class _Split:
    by_site: tuple[TopicPattern, ...]  # carry {site}
    by_device: tuple[tuple[str, TopicPattern], ...]  # (adapter name, pattern): {device}, no {site}


def _split_patterns(adapters: Sequence[Adapter]) -> _Split:
    by_site: list[TopicPattern] = []
    by_device: list[tuple[str, TopicPattern]] = []
    for adapter in adapters:
        patterns = getattr(adapter, "topic_patterns", None)
        if patterns is None:
            continue  # a Python adapter: its filters stay with the site-less session
        for p in patterns():
            names = _names(p)
            if "site" in names:
                by_site.append(p)
            elif "device" in names:
                by_device.append((adapter.name, p))
    return _Split(tuple(by_site), tuple(by_device))


class SiteTopics:
    """The filters of each session, from the adapters and the registry as they are now:
    both are read through the callables at every question (profiles and sites are reloaded
    at run time; sessions then subscribe anew: ``SiteSessions.update_subscriptions``)."""

    def __init__(
        self, adapters: Callable[[], Sequence[Adapter]], registry: Callable[[], SiteRegistry]
    ) -> None:
        self._adapters = adapters
        self._registry = registry
        self._cached: tuple[Sequence[Adapter], _Split] | None = None

    @property
    def adapters(self) -> Sequence[Adapter]:
        return self._adapters()

    @property
    def registry(self) -> SiteRegistry:
        return self._registry()

    @property
    def _patterns(self) -> _Split:
        adapters = self._adapters()
        cached = self._cached
        if cached is None or cached[0] is not adapters:
            cached = self._cached = (adapters, _split_patterns(adapters))
        return cached[1]

    def filters(self, site: str) -> list[str]:
        """What ``site``'s session subscribes to (the site-less session: every filter)."""
        out: list[str] = []
        if site == SITELESS:
            for adapter in self.adapters:
                out.extend(s for s in adapter.subscriptions() if s not in out)
            return out
        split = self._patterns
        for p in split.by_site:
            f = fill(p.pattern, {"site": site})
            if f not in out:
                out.append(f)
        config = self.registry.sites.get(site)
        devices = config.devices if config is not None else []
        for device in devices:
            for name, p in split.by_device:
                if device.profile is not None and device.profile != name:
                    continue
                f = fill(p.pattern, {"device": device.id})
                if f not in out:
                    out.append(f)
        return out

    def site_of(self, topic: str) -> str | None:
        """The registered site whose session takes ``topic``, or None (the site-less one)."""
        for p in self._patterns.by_site:
            found = p.match(topic)
            if found is not None and found.get("site") in self.registry.sites:
                return found["site"]
        for name, p in self._patterns.by_device:
            found = p.match(topic)
            if found is not None:
                entry = self.registry.device(found.get("device", ""))
                if entry is not None and entry[1].profile in (None, name):
                    return entry[0].id  # exactly what ``filters`` subscribes the site to
        return None

    def siteless_accepts(self, topic: str) -> bool:
        """Whether the site-less session reads ``topic`` (no site session takes it)."""
        return self.site_of(topic) is None
