"""Device labels for rules from the site registry (``gateway.config.sites``)."""

from __future__ import annotations

from collections.abc import Mapping

from gateway.config.sites import SiteRegistry
from rules.context import LabelLookup


def labels_from_registry(registry: SiteRegistry) -> LabelLookup:
    """A cached lookup: device id → ``kind``, ``name``, ``place``, ``zone``, ``household``,
    ``camera`` (only the ones that are set)."""
    cache: dict[str, Mapping[str, str] | None] = {}

    def lookup(device_id: str) -> Mapping[str, str] | None:
        if device_id in cache:
            return cache[device_id]
        found = registry.device(device_id)
        labels: dict[str, str] | None = None
        if found is not None:
            _, dev = found
            labels = {"kind": dev.kind.value}
            for name in ("name", "place", "zone", "household", "camera"):
                value = getattr(dev, name)
                if value:
                    labels[name] = str(value)
        cache[device_id] = labels
        return labels

    return lookup
