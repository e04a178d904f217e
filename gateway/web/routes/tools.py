"""``/api/web``, the console's tools: the compounds in scope, the SVG site plan, cameras
with live view, the profile tester, a device entry check and the routing tester."""

from __future__ import annotations

from typing import Any

import yaml
from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, Field, ValidationError

from gateway.api.deps import CurrentPrincipal, Permission
from gateway.config.sites import DeviceConfig
from gateway.events import DeviceKind, utcnow
from gateway.ids import DeviceId, Id
from gateway.incidents.categories import IncidentCategory, Severity, Source
from gateway.web import siteplan
from gateway.web.routes.deps import UserDep, WebDep, need

router = APIRouter(prefix="/api/web", tags=["web console"])


class ProfileTestIn(BaseModel):
    profile: str = Field(..., min_length=1, max_length=100)
    topic: str = Field(..., min_length=1, max_length=500)
    payload: str = Field(..., min_length=1, max_length=64 * 1024)
    site: Id | None = Field(None, description="Registry site for the device")
    kind: DeviceKind | None = None


class RoutesTestIn(BaseModel):
    category: IncidentCategory
    severity: Severity = Severity.P1
    source: Source = Source.RULE
    site: Id | None = None
    cell: Id | None = None
    device_id: DeviceId | None = None
    household: Id | None = None
    labels: dict[str, str] = Field(default_factory=dict)


@router.get("/sites")
async def sites(_: UserDep, principal: CurrentPrincipal, ctx: WebDep) -> list[dict[str, Any]]:
    """The compounds the caller covers (a property manager: their own)."""
    return [
        {"id": s.id, "name": s.name, "address": s.address, "devices": len(s.devices)}
        for s in ctx.registry.sites.values()
        if principal.scope.sees_site(s.id)
    ]


@router.get("/siteplan/{site_id}.svg", response_class=Response)
async def plan(site_id: str, _: UserDep, principal: CurrentPrincipal, ctx: WebDep) -> Response:
    """The compound's plan: only of a compound the caller covers (404 otherwise)."""
    site = ctx.registry.sites.get(site_id)
    if site is None or not principal.scope.sees_site(site.id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"未找到 / no site {site_id!r}")
    return Response(
        siteplan.render(site),
        media_type="image/svg+xml",
        headers={"Cache-Control": "no-cache"},
    )


@router.get("/cameras")
async def cameras(_: UserDep, principal: CurrentPrincipal, ctx: WebDep) -> list[str]:
    """Cameras with live view, of the compounds the caller covers."""
    if not principal.allows(Permission.LIVE_VIEW):
        return []

    def visible(camera: str) -> bool:
        found = ctx.registry.device(camera)
        return principal.scope.everything or (
            found is not None and principal.scope.sees_site(found[0].id)
        )

    return sorted(c for c in ctx.camera_ids() if visible(c))


@router.get("/profiles")
async def profiles(user: UserDep, ctx: WebDep) -> list[str]:
    need(user, "devices")
    return ctx.profile_ids()


@router.post("/profile-test")
async def profile_test(body: ProfileTestIn, user: UserDep, ctx: WebDep) -> dict[str, Any]:
    """Normalise a pasted payload with one profile: the events, or exactly why none."""
    need(user, "devices")
    return ctx.profile_test(body.profile, body.topic, body.payload, body.site, body.kind)


@router.post("/device-check")
async def device_check(body: dict[str, Any], user: UserDep, ctx: WebDep) -> dict[str, Any]:
    """Check a device entry without storing it (``PUT /api/devices/{id}`` stores it),
    like ``lianfang config check`` does, and give its line for ``devices:`` of the site
    file, for sites kept in Git."""
    need(user, "devices")
    site_id = str(body.pop("site", "") or "")
    if site_id not in ctx.registry.sites:
        return {"ok": False, "errors": [f"site: unknown site {site_id!r}"]}
    entry = {k: v for k, v in body.items() if v not in (None, "")}
    try:
        device = DeviceConfig.model_validate(entry)
    except ValidationError as exc:
        return {
            "ok": False,
            "errors": [
                f"{'.'.join(str(p) for p in e['loc']) or 'device'}: {e['msg']}"
                for e in exc.errors()
            ],
        }
    errors = [f"{field}: {msg}" for field, msg in ctx.device_problems(site_id, device)]
    line = yaml.safe_dump(
        [device.model_dump(exclude_none=True, mode="json")],
        allow_unicode=True,
        default_flow_style=None,
        sort_keys=False,
        width=200,
    ).strip()
    return {
        "ok": not errors,
        "errors": errors,
        "action": "edit" if ctx.registry.device(device.id) else "add",
        "file": f"config/sites/{site_id}.yaml",
        "yaml": line,
    }


@router.post("/routes-test")
async def routes_test(body: RoutesTestIn, user: UserDep, ctx: WebDep) -> dict[str, Any]:
    """Which routes match and whom an incident would reach (``lianfang routes test``)."""
    need(user, "rules")
    return ctx.routes_test(body.model_dump(mode="json"))


@router.get("/now")
async def now() -> dict[str, str]:
    """The gateway clock (the escalation countdown runs on it)."""
    return {"now": utcnow().isoformat()}
