"""``/api/evidence``: snapshot metadata and the JPEGs themselves (the store: ``app.state.evidence``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from pydantic import BaseModel

from gateway.api.deps import CurrentPrincipal, DatabaseDep, Permission, app_part, require
from gateway.auth.guards import camera_visible
from gateway.evidence.store import ID_PATTERN, EvidenceStore, StoredSnapshot


class EvidencePublic(BaseModel):
    id: str
    camera_id: str
    captured_at: datetime
    size: int
    method: str
    reason: str
    ref: str | None
    pinned: bool
    image_url: str

    @classmethod
    def of(cls, meta: StoredSnapshot) -> EvidencePublic:
        return cls(
            id=meta.id,
            camera_id=meta.camera_id,
            captured_at=meta.captured_at,
            size=meta.size,
            method=meta.method,
            reason=meta.reason,
            ref=meta.ref,
            pinned=meta.pinned,
            image_url=f"/api/evidence/{meta.id}/image",
        )


SnapshotId = Annotated[str, Path(pattern=ID_PATTERN, description="Snapshot id")]


EvidenceDep = Annotated[EvidenceStore, Depends(app_part("evidence"))]
# Snapshots show people: evidence:read, and only snapshots of cameras in the caller's scope
# (camera → device → site, as for live view); others answer 404 like a missing id.
router = APIRouter(
    prefix="/api/evidence",
    tags=["evidence"],
    dependencies=[Depends(require(Permission.EVIDENCE_READ))],
)


async def found(
    snapshot_id: SnapshotId, principal: CurrentPrincipal, db: DatabaseDep, store: EvidenceDep
) -> StoredSnapshot:
    """Dependency: the snapshot, if it exists and its camera is in the caller's scope."""
    meta = store.get(snapshot_id)
    if meta is None or not await camera_visible(principal, db, meta.camera_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such snapshot")
    return meta


InScope = Annotated[StoredSnapshot, Depends(found)]
Ref = Annotated[str, Query(min_length=1, max_length=128, description="Incident or event id")]


@router.get("", summary="Snapshots attached to an incident or event")
async def list_evidence(
    ref: Ref, principal: CurrentPrincipal, db: DatabaseDep, store: EvidenceDep
) -> list[EvidencePublic]:
    """The ref's snapshots whose cameras are in the caller's scope."""
    return [
        EvidencePublic.of(m)
        for m in store.for_ref(ref)
        if await camera_visible(principal, db, m.camera_id)
    ]


@router.get("/{snapshot_id}", summary="One snapshot's metadata")
async def get_evidence(meta: InScope) -> EvidencePublic:
    return EvidencePublic.of(meta)


@router.get(
    "/{snapshot_id}/image",
    summary="The JPEG",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}}},
)
async def get_image(meta: InScope, store: EvidenceDep) -> Response:
    data = store.read(meta.id)
    if data is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "snapshot file is gone")
    return Response(
        data,
        media_type="image/jpeg",
        headers={
            "Cache-Control": "private, max-age=3600",
            "X-Captured-At": meta.captured_at.isoformat(),
        },
    )
