from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, status

from gateway.api import queries
from gateway.api.deps import DatabaseDep, DeviceFilterDep, DevicePageDep, Permission, require
from gateway.api.schemas import DevicePublic, ErrorMessage, Page
from gateway.auth.guards import visible_device

router = APIRouter(
    prefix="/devices", tags=["devices"], dependencies=[Depends(require(Permission.DEVICES_READ))]
)


@router.get("")
async def list_devices(
    db: DatabaseDep, flt: DeviceFilterDep, page: DevicePageDep
) -> Page[DevicePublic]:
    """Devices ordered by id, with their last reported state."""
    return await db.run(queries.list_devices, flt, page)


@router.get(
    "/{device_id:path}",
    responses={404: {"model": ErrorMessage}},
    dependencies=[Depends(visible_device)],
)
async def get_device(device_id: str, db: DatabaseDep) -> DevicePublic:
    device = await db.run(queries.get_device, device_id)
    if device is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"device {device_id!r} not found")
    return device
