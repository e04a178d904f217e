"""Sites (compounds) and their registered devices, from ``config/sites/*.yaml``."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.config.errors import ConfigError, ConfigErrors
from gateway.config.loader import load_model
from gateway.events import DeviceKind
from gateway.ids import DeviceId, Id, Name
from gateway.receivers.gb28181.config import Gb28181DeviceConfig
from gateway.receivers.sia.config import SiaPanelConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceConfig(_Strict):
    id: DeviceId = Field(..., description="Device id as the profile extracts it (gateway/ids.py)")
    kind: DeviceKind
    name: Name = Field("", max_length=200)
    profile: str | None = Field(
        None, description="Profile id expected for this device (informational)"
    )
    place: Id | None = Field(
        None, description="Building, gate, perimeter zone or door it belongs to"
    )
    zone: Name | None = Field(None, max_length=64)
    household: Id | None = Field(None, description="Household id, for panic buttons")
    camera: DeviceId | None = Field(
        None, description="Linked camera device id (evidence snapshots)"
    )
    heartbeat_s: int | None = Field(None, ge=1, description="Expected heartbeat period")
    # Devices that push over their own protocols (gateway/receivers).
    sia: SiaPanelConfig | None = Field(None, description="Alarm panel reporting over SIA DC-09")
    gb28181: Gb28181DeviceConfig | None = Field(
        None, description="Camera or NVR registering over GB/T 28181 (id: its 20-digit code)"
    )
    password_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$",
        description="Environment variable holding the device's password, for the push "
        "protocols' authentication (GA/T 1400, ISAPI digest); never the password itself",
    )


class PlaceConfig(_Strict):
    id: Id
    kind: str = Field(..., description="compound, building, unit, gate, perimeter_zone, door")
    name: Name = Field("", max_length=200)
    parent: Id | None = None


class SiteConfig(_Strict):
    """One compound (小区)."""

    id: Id
    name: Name = Field("", max_length=200)
    address: Name = Field("", max_length=300)
    places: list[PlaceConfig] = []
    devices: list[DeviceConfig] = []

    @model_validator(mode="after")
    def _unique(self) -> SiteConfig:
        seen: set[str] = set()
        accounts: set[str] = set()
        for d in self.devices:
            if d.id in seen:
                raise ValueError(f"device id {d.id!r} appears twice")
            seen.add(d.id)
            if d.sia is not None:
                if d.sia.account in accounts:
                    raise ValueError(f"SIA account {d.sia.account!r} appears twice")
                accounts.add(d.sia.account)
        return self


class SiteRegistry:
    """Look-up of registered devices across all sites."""

    def __init__(self, sites: list[SiteConfig]) -> None:
        self.sites = {s.id: s for s in sites}
        self._devices: dict[str, tuple[SiteConfig, DeviceConfig]] = {}
        for site in sites:
            for device in site.devices:
                self._devices[device.id] = (site, device)

    def device(self, device_id: str) -> tuple[SiteConfig, DeviceConfig] | None:
        return self._devices.get(device_id)

    def problems(self, site_id: str, device: DeviceConfig) -> list[tuple[str, str]]:
        """What ``lianfang config check`` would say of ``device`` in ``site_id`` (besides the
        model's own validation): ``(field, reason)`` pairs, empty when it may be stored."""
        site = self.sites.get(site_id)
        if site is None:
            return [("site", f"unknown site {site_id!r}")]
        out: list[tuple[str, str]] = []
        if device.place and device.place not in {p.id for p in site.places}:
            out.append(("place", f"unknown place {device.place!r} in {site_id}"))
        cameras = {d.id for d in site.devices} | {device.id}
        if device.camera and device.camera not in cameras:
            out.append(("camera", f"unknown device {device.camera!r} in {site_id}"))
        return out

    def put(self, site_id: str, device: DeviceConfig) -> tuple[str, DeviceConfig] | None:
        """Add or replace one device, in place: every part holding this registry (ingest,
        rules, cameras, grid) sees it at once. A device moved to another site leaves its old
        one. Returns the previous ``(site id, device)``, or None for a new device. Check
        ``problems`` first."""
        before = self._devices.get(device.id)
        if before is not None and before[0].id != site_id:
            old = self.sites[before[0].id]
            self._replace(
                old.model_copy(update={"devices": [d for d in old.devices if d.id != device.id]})
            )
        site = self.sites[site_id]
        devices = list(site.devices)
        at = next((i for i, d in enumerate(devices) if d.id == device.id), None)
        if at is None:
            devices.append(device)
        else:
            devices[at] = device
        self._replace(site.model_copy(update={"devices": devices}))
        return None if before is None else (before[0].id, before[1])

    def remove(self, device_id: str) -> tuple[str, DeviceConfig] | None:
        """Take one device out, in place (every part holding this registry no longer finds
        it). Returns its ``(site id, device)``, or None when it was not registered."""
        before = self._devices.pop(device_id, None)
        if before is None:
            return None
        site = self.sites[before[0].id]
        self._replace(
            site.model_copy(update={"devices": [d for d in site.devices if d.id != device_id]})
        )
        return before[0].id, before[1]

    def replace_with(self, other: SiteRegistry) -> set[str]:
        """Take ``other``'s sites and devices, in place (every part holding this registry sees
        them at once). Returns the ids of the devices added, removed or changed."""
        before = {d: dev for d, (_, dev) in self._devices.items()}
        site_of = {d: site.id for d, (site, _) in self._devices.items()}
        self.sites = dict(other.sites)
        self._devices = dict(other._devices)
        after = {d: dev for d, (_, dev) in self._devices.items()}
        return {
            d
            for d in before.keys() | after.keys()
            if before.get(d) != after.get(d)
            or site_of.get(d) != (self._devices[d][0].id if d in self._devices else None)
        }

    def linked_to(self, device_id: str) -> list[str]:
        """Ids of the devices whose linked ``camera`` is ``device_id``."""
        return sorted(d.id for _, d in self._devices.values() if d.camera == device_id)

    def _replace(self, site: SiteConfig) -> None:
        self.sites[site.id] = site
        for d in site.devices:
            self._devices[d.id] = (site, d)

    def __len__(self) -> int:
        return len(self._devices)


def load_sites(directory: Path) -> SiteRegistry:
    """Load every ``*.yaml`` in ``directory``; a device id may belong to one site only."""
    sites: list[SiteConfig] = []
    errors: list[ConfigError] = []
    owner: dict[str, Path] = {}
    for path in sorted(directory.glob("*.yaml")) if directory.is_dir() else []:
        try:
            site = load_model(SiteConfig, path)
        except ConfigErrors as exc:
            errors.extend(exc.errors)
            continue
        for i, d in enumerate(site.devices):
            if d.id in owner:
                errors.append(
                    ConfigError(
                        str(path),
                        f"devices[{i}].id",
                        f"device {d.id!r} is already registered in {owner[d.id]}",
                    )
                )
            owner[d.id] = path
        sites.append(site)
    if errors:
        raise ConfigErrors(errors)
    return SiteRegistry(sites)
