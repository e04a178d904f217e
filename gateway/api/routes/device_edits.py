"""``PUT /api/devices/{id}``: add or edit a device, ``DELETE /api/devices/{id}``: remove one
added in the console (the console's Devices page uses both).

The device is validated like ``lianfang config check`` (the site file model, plus its place,
camera and profile must exist), stored in the ``devices`` table as the record of the edit,
and put into the running gateway's registry at once: ingest accepts its messages from the
next one on. A caller scoped to compounds (a property manager) may only add devices to its
own compounds, and an existing device of another compound answers 404 like a missing one.

Only a device the console added can be removed (409 for one of the site files, which would
come back on the next start, and for a camera other devices link to). It leaves the
registry at once (its next message is an unknown device's), its row goes, its stored events
stay (they are evidence). The audit middleware records every call with its answer (which
holds the device before and after an edit, and the device removed).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Depends, HTTPException, Path, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gateway.api import queries
from gateway.api.deps import CurrentPrincipal, DatabaseDep, Permission, app_part, require
from gateway.api.schemas import DevicePublic, ErrorMessage
from gateway.audit.middleware import AUDIT_BEFORE
from gateway.auth.guards import visible_device
from gateway.config.sites import DeviceConfig, SiteRegistry
from gateway.events import DeviceKind
from gateway.ids import DEVICE_ID_MAX, ID_PATTERN, ID_RULE, DeviceId, Id, Name
from gateway.receivers.gb28181.config import Gb28181DeviceConfig
from gateway.receivers.sia.config import SiaPanelConfig
from gateway.storage.registry import DeviceRemoval, protocols_of

# The id grammar (gateway/ids.py) for new and edited devices. Removal takes any id without
# control characters or MQTT wildcards, so an entry stored before the grammar can still go.
LEGACY_DEVICE_ID_PATTERN = r"^[^\x00-\x1f\x7f+#\s](?:[^\x00-\x1f\x7f+#]*[^\x00-\x1f\x7f+#\s])?$"
DeviceIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=DEVICE_ID_MAX,
        pattern=ID_PATTERN,
        description=f"Device id as the profile extracts it: {ID_RULE}",
    ),
]
StoredDeviceIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=DEVICE_ID_MAX,
        pattern=LEGACY_DEVICE_ID_PATTERN,
        description="Device id (also one stored before the id grammar)",
    ),
]


class DeviceIn(BaseModel):
    """A device entry as in ``config/sites/<site>.yaml`` (``devices:``), plus its site."""

    model_config = ConfigDict(extra="forbid")

    site: Id = Field(..., description="Compound (site) id")
    kind: DeviceKind
    name: Name = Field("", max_length=200)
    profile: str | None = Field(None, max_length=100, description="Profile id (checked)")
    place: Id | None = Field(None, description="Place id of the site")
    zone: Name | None = Field(None, max_length=64)
    household: Id | None = Field(None, description="For panic buttons")
    camera: DeviceId | None = Field(None, description="Linked camera device id")
    heartbeat_s: int | None = Field(None, ge=1, le=7 * 86400)
    # The push protocols' settings (docs/receivers-*.md). Left out, an edit keeps the
    # entry's (the console's form has no fields for them); given, they replace them (null:
    # none).
    sia: SiaPanelConfig | None = Field(None, description="Omitted: kept as they are")
    gb28181: Gb28181DeviceConfig | None = Field(None, description="Omitted: kept as they are")
    password_env: str | None = Field(
        None, max_length=128, description="Environment variable name; omitted: kept as it is"
    )

    @field_validator("profile", "place", "zone", "household", "camera", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        """A form's empty field means "not set"."""
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    def device(self, device_id: str, before: DeviceConfig | None = None) -> DeviceConfig:
        """The entry to store: the fields given, and the push-protocol settings of ``before``
        (the entry edited) for those left out."""
        kept = {
            k: v
            for k, v in (protocols_of(before) if before is not None else {}).items()
            if k not in self.model_fields_set
        }
        given = self.model_dump(exclude={"site"}, exclude_none=True, mode="json")
        return DeviceConfig.model_validate({"id": device_id, **kept, **given})


class DeviceSaved(BaseModel):
    action: Literal["add", "edit"]
    device: DevicePublic
    before: dict[str, Any] | None = Field(
        None, description="The entry before an edit (site and fields), for the audit log"
    )


class DeviceWriter(Protocol):
    """What the route needs from the running gateway (``gateway.runtime.Gateway``)."""

    registry: SiteRegistry

    def device_problems(self, site_id: str, device: DeviceConfig) -> list[tuple[str, str]]: ...

    async def put_device(
        self, site_id: str, device: DeviceConfig
    ) -> tuple[str, DeviceConfig] | None: ...

    async def delete_device(self, device_id: str) -> DeviceRemoval: ...


def _conflict(device_id: str, removal: DeviceRemoval) -> HTTPException:
    """409 with a reason the console shows as it is (Chinese, then English)."""
    if removal.outcome == "site_file":
        msg = (
            f"设备 {device_id} 由站点文件（config/sites/）管理，请在站点文件中删除 / "
            f"device {device_id!r} is managed in the site file of {removal.site!r} "
            "(config/sites/): remove it there; the console removes only devices it added"
        )
    elif removal.outcome == "linked":
        others = ", ".join(removal.linked)
        msg = (
            f"设备 {device_id} 是 {others} 的关联摄像机，请先取消关联 / "
            f"device {device_id!r} is the linked camera of {others}: unlink it first"
        )
    else:
        msg = (
            f"设备 {device_id} 不是在控制台添加的 / device {device_id!r} was not added in the "
            "console (first seen on the broker): there is nothing of it to remove"
        )
    return HTTPException(status.HTTP_409_CONFLICT, msg)


def unprocessable(problems: list[tuple[str, str]], value: Any = None) -> RequestValidationError:
    """422 in FastAPI's own shape: ``detail[].loc`` names the field, ``msg`` the reason."""
    return RequestValidationError(
        [
            {"type": "value_error", "loc": ("body", field), "msg": msg, "input": value}
            for field, msg in problems
        ]
    )


def _stored_site(engine: Any, device_id: str) -> str | None:
    from sqlalchemy import select

    from gateway.storage.tables import devices

    with engine.connect() as conn:
        found = conn.execute(select(devices.c.site).where(devices.c.id == device_id)).scalar()
    return None if found is None else str(found)


# the running gateway (app.state.devices: gateway.server)
DeviceWriterDep = Annotated[DeviceWriter, Depends(app_part("devices"))]
router = APIRouter(prefix="/api/devices", tags=["devices"])


@router.put(
    "/{device_id:path}",
    dependencies=[Depends(require(Permission.DEVICES_WRITE))],
    responses={201: {"model": DeviceSaved}, 403: {}, 404: {}, 422: {}},
)
async def put_device(
    device_id: DeviceIdPath,
    body: DeviceIn,
    principal: CurrentPrincipal,
    db: DatabaseDep,
    writer: DeviceWriterDep,
    response: Response,
) -> DeviceSaved:
    """Add (201) or edit (200) a device; it takes effect at once and survives restarts.
    A console edit is kept over the site file's entry from then on."""
    stored_site = await db.run(_stored_site, device_id)
    if stored_site is not None:
        await visible_device(device_id, principal, db)  # another compound's: 404
    if not principal.scope.sees_site(body.site):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"不是您的小区 / site {body.site!r} is not yours"
        )
    current = writer.registry.device(device_id)
    try:
        device = body.device(device_id, current[1] if current is not None else None)
    except ValidationError as exc:  # DeviceConfig is the site files' model
        raise unprocessable(
            [(".".join(str(p) for p in e["loc"]) or "device", e["msg"]) for e in exc.errors()]
        ) from None
    problems = writer.device_problems(body.site, device)
    if problems:
        raise unprocessable(problems)
    before = await writer.put_device(body.site, device)
    saved = await db.run(queries.get_device, device_id)
    if saved is None:  # stored a moment ago
        raise HTTPException(status.HTTP_500_INTERNAL_SERVER_ERROR, "device not stored")
    if before is None:
        response.status_code = status.HTTP_201_CREATED
    return DeviceSaved(
        action="add" if before is None else "edit",
        device=saved,
        before=None
        if before is None
        else {"site": before[0], **before[1].model_dump(mode="json", exclude_none=True)},
    )


@router.delete(
    "/{device_id:path}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(require(Permission.DEVICES_WRITE))],
    responses={403: {}, 404: {}, 409: {"model": ErrorMessage}},
)
async def delete_device(
    device_id: StoredDeviceIdPath,
    principal: CurrentPrincipal,
    db: DatabaseDep,
    writer: DeviceWriterDep,
    request: Request,
) -> Response:
    """Remove a device added in the console (204): it stops being registered at once (its
    messages are then an unknown device's) and its row goes; its stored events are kept.
    A device of the site files answers 409: remove it there."""
    if await db.run(_stored_site, device_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"device {device_id!r} not found")
    await visible_device(device_id, principal, db)  # another compound's: 404
    removal = await writer.delete_device(device_id)
    if removal.outcome == "missing":  # removed meanwhile
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"device {device_id!r} not found")
    if removal.outcome != "deleted":
        raise _conflict(device_id, removal)
    if removal.device is not None:  # the audit row's "before": the entry removed
        entry = removal.device.model_dump(mode="json", exclude_none=True)
        setattr(request.state, AUDIT_BEFORE, {"site": removal.site, **entry})
    return Response(status_code=status.HTTP_204_NO_CONTENT)
