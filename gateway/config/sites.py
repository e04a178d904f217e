"""Sites (compounds) and their registered devices, from ``config/sites/*.yaml``."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.config.errors import ConfigError, ConfigErrors
from gateway.config.loader import load_model
from gateway.events import DeviceKind


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceConfig(_Strict):
    id: str = Field(
        ..., min_length=1, max_length=128, description="Device id as the profile extracts it"
    )
    kind: DeviceKind
    name: str = ""
    profile: str | None = Field(
        None, description="Profile id expected for this device (informational)"
    )
    place: str | None = Field(
        None, description="Building, gate, perimeter zone or door it belongs to"
    )
    zone: str | None = None
    household: str | None = Field(None, description="Household id, for panic buttons")
    camera: str | None = Field(None, description="Linked camera device id (evidence snapshots)")
    heartbeat_s: int | None = Field(None, ge=1, description="Expected heartbeat period")


class PlaceConfig(_Strict):
    id: str
    kind: str = Field(..., description="compound, building, unit, gate, perimeter_zone, door")
    name: str = ""
    parent: str | None = None


class SiteConfig(_Strict):
    """One compound (小区)."""

    id: str = Field(..., min_length=1, max_length=64)
    name: str = ""
    address: str = ""
    places: list[PlaceConfig] = []
    devices: list[DeviceConfig] = []

    @model_validator(mode="after")
    def _unique(self) -> SiteConfig:
        seen: set[str] = set()
        for d in self.devices:
            if d.id in seen:
                raise ValueError(f"device id {d.id!r} appears twice")
            seen.add(d.id)
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
