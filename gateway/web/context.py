"""What the console needs from a running gateway and its incidents runtime, in one place.

``WebContext(gateway, incidents)`` reads through to them on every call, so an edit of the
grid (``IncidentsRuntime.reload_grid``) is seen at once.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from gateway.config.errors import ConfigErrors
from gateway.config.sites import DeviceConfig, SiteRegistry
from gateway.evidence.store import StoredSnapshot
from gateway.grid.directory import GridDirectory
from gateway.incidents.service import IncidentService
from gateway.routing.model import RoutingConfig

if TYPE_CHECKING:
    from gateway.incidents.runtime import IncidentsRuntime
    from gateway.runtime import Gateway


class WebContext:
    def __init__(self, gateway: Gateway, incidents: IncidentsRuntime) -> None:
        self.gateway = gateway
        self.incidents = incidents

    # -- read-through ---------------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        return self.gateway.engine

    @property
    def registry(self) -> SiteRegistry:
        return self.gateway.registry

    @property
    def grid(self) -> GridDirectory:
        return self.incidents.grid

    @property
    def routing(self) -> RoutingConfig:
        return self.incidents.routing

    @property
    def service(self) -> IncidentService:
        return self.incidents.service

    @property
    def timezone(self) -> str:
        return self.incidents.timezone

    @property
    def profiles_dir(self) -> Path:
        return self.gateway.config.profiles_dir

    def device_problems(self, site_id: str, device: DeviceConfig) -> list[tuple[str, str]]:
        return self.gateway.device_problems(site_id, device)

    # -- cameras --------------------------------------------------------------------------
    def camera_ids(self) -> set[str]:
        return set(self.gateway.cameras.live.cameras)

    def snapshots_camera_for(self, device_id: str) -> str | None:
        return self.gateway.cameras.snapshots.camera_for(device_id)

    def evidence_for(self, ref: str) -> list[StoredSnapshot]:
        return self.gateway.cameras.store.for_ref(ref)

    async def capture(self, ref: str, camera_id: str, reason: str) -> StoredSnapshot | None:
        return await self.gateway.cameras.snapshots.capture_and_store(ref, camera_id, reason)

    # -- testers --------------------------------------------------------------------------
    def profile_ids(self) -> list[str]:
        from device_adapters.profiles.loader import load_profiles

        try:
            return sorted(p.profile for p in load_profiles(self.profiles_dir))
        except ConfigErrors:
            return []

    def profile_test(
        self, profile: str, topic: str, payload: str, site: str | None, kind: Any
    ) -> dict[str, Any]:
        """``lianfang profile test`` for a pasted payload: events, or why there are none.
        The device is looked up in the site registry, else registered as ``site``/``kind``."""
        from device_adapters.base import DeviceInfo, MappingError, Message, NoMatch
        from device_adapters.profiles.engine import ProfileAdapter, UnknownDevice
        from gateway.cli.profile_cmd import (
            MAX_JSON_DEPTH,
            MAX_PAYLOAD_BYTES,
            ProfileNotFound,
            resolve_profile,
        )
        from gateway.events import utcnow
        from gateway.ingest.decode import Rejected, decode_payload

        try:
            chosen = resolve_profile(profile, self.profiles_dir)
        except (ProfileNotFound, ConfigErrors) as exc:
            return {"ok": False, "error": str(exc)}
        adapter = ProfileAdapter(chosen, default_tz=self.timezone)
        if not adapter.accepts(topic):
            return {"ok": False, "error": f"profile {chosen.profile} does not take topic {topic}"}
        fmt = adapter.payload_format(topic)
        raw = payload.encode("utf-8")
        try:
            decoded = decode_payload(
                raw, fmt, max_bytes=MAX_PAYLOAD_BYTES, max_depth=MAX_JSON_DEPTH
            )
        except Rejected as exc:
            return {"ok": False, "error": f"payload rejected before the profile ({fmt}): {exc}"}
        message = Message(topic, decoded, raw, utcnow())

        def lookup(device_id: str) -> DeviceInfo | None:
            found = self.registry.device(device_id)
            if found is not None:
                return DeviceInfo(found[0].id, found[1].kind)
            if site and kind:
                return DeviceInfo(site, kind)
            return None

        try:
            events = adapter.normalise(message, lookup)
        except UnknownDevice as exc:
            return {
                "ok": False,
                "error": f"no event: {exc.reason} (give a site and kind to try it unregistered)",
            }
        except NoMatch as exc:
            return {"ok": False, "error": f"no event: {exc.reason}"}
        except MappingError as exc:
            return {"ok": False, "error": f"invalid event: {exc}"}
        return {
            "ok": True,
            "events": [json.loads(e.model_dump_json()) for e in events],
        }

    def routes_test(self, body: dict[str, Any]) -> dict[str, Any]:
        from gateway.routing import RouteInput, explain

        grid = self.grid
        loc = grid.locate(
            site=body.get("site"),
            device_id=body.get("device_id"),
            household=body.get("household"),
            cell=body.get("cell"),
        )
        x = RouteInput(
            body["category"],
            body["severity"],
            body["source"],
            loc.cell,
            loc.community,
            loc.site,
            None,
            body.get("labels") or {},
        )
        return explain(self.routing, grid, x, loc)
