"""``/api/config``: reload profiles and sites without a restart (gateway/reloading.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from gateway.api.deps import Permission, app_part, require
from gateway.config.errors import ConfigError
from gateway.reloading import ConfigReloader, ReloadReport


class ConfigErrorOut(BaseModel):
    file: str
    key_path: str
    message: str

    @classmethod
    def of(cls, error: ConfigError) -> ConfigErrorOut:
        return cls(file=error.file, key_path=error.key_path, message=error.message)


class ReloadOut(BaseModel):
    ok: bool
    profiles: list[str] = Field(default_factory=list, description="Profiles now in use")
    subscribed: list[str] = Field(default_factory=list, description="MQTT filters added")
    unsubscribed: list[str] = Field(default_factory=list, description="MQTT filters dropped")
    devices_changed: list[str] = Field(default_factory=list)
    sites: int = 0
    errors: list[ConfigErrorOut] = Field(default_factory=list)

    @classmethod
    def of(cls, report: ReloadReport) -> ReloadOut:
        return cls(
            ok=not report.errors,
            profiles=report.profiles,
            subscribed=report.subscribed,
            unsubscribed=report.unsubscribed,
            devices_changed=report.devices_changed,
            sites=report.sites,
            errors=[ConfigErrorOut.of(e) for e in report.errors],
        )


ReloaderDep = Annotated[ConfigReloader, Depends(app_part("reloader"))]
router = APIRouter(prefix="/api/config", tags=["config"])


@router.post(
    "/reload",
    response_model=ReloadOut,
    responses={422: {"model": ReloadOut}},
    dependencies=[Depends(require(Permission.DEVICES_WRITE))],
)
async def reload_config(reloader: ReloaderDep) -> ReloadOut | JSONResponse:
    """Read profiles and sites again and use them at once (the files are also checked
    every few seconds). On errors (422) the running profiles and sites stay."""
    out = ReloadOut.of(await reloader.reload())
    if not out.ok:
        return JSONResponse(out.model_dump(mode="json"), status_code=422)
    return out
