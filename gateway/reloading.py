"""Profiles and sites reload without a restart, like rules: the files are checked every few
seconds (and on ``POST /api/config/reload``); a valid new set is swapped in, an invalid one is
refused with its errors and the running set stays.

- Profiles: the normaliser takes the new adapters from the next message on, and the MQTT
  consumer subscribes to the topic filters a new profile needs (and drops the ones none needs).
- Sites: the registry is replaced in place (ingest, rules, cameras and the grid read it), the
  devices added in the console keep precedence over the files, and the database's device rows
  follow. A device gone from the files is forgotten by the rules; its stored events stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from device_adapters.base import Adapter
from device_adapters.registry import load_adapters
from gateway.config.errors import ConfigError, ConfigErrors
from gateway.config.fingerprint import Fingerprint, tree_fingerprint
from gateway.config.sites import SiteRegistry, load_sites
from gateway.storage.registry import console_devices, seed_registry

if TYPE_CHECKING:
    from gateway.runtime import Gateway

log = logging.getLogger(__name__)


@dataclass
class ReloadReport:
    """What a reload changed, or why it changed nothing."""

    profiles: list[str] = field(default_factory=list)  # the profiles now in use
    subscribed: list[str] = field(default_factory=list)  # topic filters added
    unsubscribed: list[str] = field(default_factory=list)
    devices_changed: list[str] = field(default_factory=list)  # added, removed or edited
    sites: int = 0
    errors: list[ConfigError] = field(default_factory=list)


class ConfigReloader:
    """Watches ``profiles_dir`` and ``sites_dir`` of one gateway."""

    def __init__(self, gateway: Gateway, *, watch_every_s: float = 5.0) -> None:
        self.gateway = gateway
        self.watch_every_s = watch_every_s
        self.last_errors: list[ConfigError] = []
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._seen: tuple[Fingerprint, Fingerprint] = self._fingerprints()

    def _fingerprints(self) -> tuple[Fingerprint, Fingerprint]:
        config = self.gateway.config
        return tree_fingerprint(config.profiles_dir), tree_fingerprint(config.sites_dir)

    async def start(self) -> None:
        if self.watch_every_s > 0:
            self._task = asyncio.create_task(self._watch(), name="config-reload")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.watch_every_s)
            seen = await asyncio.to_thread(self._fingerprints)
            if seen != self._seen:
                try:
                    await self.reload()
                except Exception:  # a reload bug must not end the watch
                    log.exception("profiles/sites reload failed")

    async def reload(self) -> ReloadReport:
        """Read profiles and sites again; swap in what is valid as a whole."""
        async with self._lock:
            self._seen = await asyncio.to_thread(self._fingerprints)
            config = self.gateway.config
            report = ReloadReport()
            try:
                adapters = await asyncio.to_thread(
                    load_adapters, config.profiles_dir, config.timezone
                )
            except ConfigErrors as exc:
                report.errors.extend(exc.errors)
                adapters = None
            try:
                files = await asyncio.to_thread(load_sites, config.sites_dir)
            except ConfigErrors as exc:
                report.errors.extend(exc.errors)
                files = None
            if report.errors:
                self.last_errors = report.errors
                log.error(
                    "profiles/sites reload refused, the running set stays:\n%s",
                    "\n".join(str(e) for e in report.errors),
                )
                return report
            assert adapters is not None and files is not None
            self.last_errors = []
            self._use_adapters(adapters, report)
            await self._use_sites(files, report)
            log.info(
                "profiles and sites reloaded: %d profiles, %d sites; subscribed %s, "
                "unsubscribed %s; %d devices changed",
                len(report.profiles), report.sites, report.subscribed or "-",
                report.unsubscribed or "-", len(report.devices_changed),
            )  # fmt: skip
            return report

    def _use_adapters(self, adapters: list[Adapter], report: ReloadReport) -> None:
        gateway = self.gateway
        gateway.adapters = adapters
        gateway.normaliser.replace_adapters(gateway.adapters)
        if gateway.sessions is not None:  # cluster mode: every site's session
            report.subscribed, report.unsubscribed = gateway.sessions.update_subscriptions()
        else:
            report.subscribed, report.unsubscribed = gateway.consumer.update_subscriptions()
        report.profiles = sorted(str(getattr(a, "name", a)) for a in gateway.adapters)

    async def _use_sites(self, files: SiteRegistry, report: ReloadReport) -> None:
        gateway = self.gateway
        fresh = SiteRegistry(list(files.sites.values()))
        # The console's devices are the record for the ids it holds (docs/web-console.md).
        for site_id, device in await asyncio.to_thread(console_devices, gateway.engine):
            if site_id in fresh.sites:
                fresh.put(site_id, device)
        changed = gateway.registry.replace_with(fresh)
        gateway.site_file_devices = {
            d.id: site.id for site in files.sites.values() for d in site.devices
        }
        for device_id in changed:
            gateway.device_changed(device_id)
            if gateway.registry.device(device_id) is None:
                gateway.rules.forget_device(device_id)
        await asyncio.to_thread(seed_registry, gateway.engine, gateway.registry)
        report.devices_changed = sorted(changed)
        report.sites = len(gateway.registry.sites)
