"""``/api/evidence``: snapshot metadata and the JPEGs themselves."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Response, status
from pydantic import BaseModel

from gateway.api.deps import Permission, require
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


def evidence_router(store: EvidenceStore) -> APIRouter:
    # Snapshots show people: only roles that cover the whole territory read them
    # (docs/security.md); there is no per-compound check on snapshots yet.
    router = APIRouter(
        prefix="/api/evidence",
        tags=["evidence"],
        dependencies=[Depends(require(Permission.EVIDENCE_READ))],
    )

    def found(snapshot_id: str) -> StoredSnapshot:
        meta = store.get(snapshot_id)
        if meta is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such snapshot")
        return meta

    @router.get("", summary="Snapshots attached to an incident or event")
    async def list_evidence(
        ref: Annotated[
            str, Query(min_length=1, max_length=128, description="Incident or event id")
        ],
    ) -> list[EvidencePublic]:
        return [EvidencePublic.of(m) for m in store.for_ref(ref)]

    @router.get("/{snapshot_id}", summary="One snapshot's metadata")
    async def get_evidence(snapshot_id: SnapshotId) -> EvidencePublic:
        return EvidencePublic.of(found(snapshot_id))

    @router.get(
        "/{snapshot_id}/image",
        summary="The JPEG",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}},
    )
    async def get_image(snapshot_id: SnapshotId) -> Response:
        meta = found(snapshot_id)
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

    return router
