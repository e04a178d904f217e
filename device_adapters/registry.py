"""Assemble the adapters: YAML profiles first, then Python adapters from entry points."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from pathlib import Path

from device_adapters.base import Adapter
from device_adapters.profiles.engine import ProfileAdapter
from device_adapters.profiles.loader import load_profiles

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "lianfang.adapters"


def plugin_adapters() -> list[Adapter]:
    """Instantiate every adapter class registered under ``lianfang.adapters``."""
    found: list[Adapter] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        cls = ep.load()
        adapter = cls()
        if not isinstance(adapter, Adapter):
            raise TypeError(
                f"entry point {ep.name} ({ep.value}) does not implement the Adapter protocol"
            )
        found.append(adapter)
        log.info("loaded adapter plug-in %s from %s", ep.name, ep.value)
    return found


def load_adapters(profiles_dir: Path, default_tz: str = "Asia/Shanghai") -> list[Adapter]:
    adapters: list[Adapter] = [ProfileAdapter(p, default_tz) for p in load_profiles(profiles_dir)]
    adapters.extend(plugin_adapters())
    return adapters
