"""``/api/live``: WebRTC offers for a camera's live view (the service: ``app.state.live``)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Response, status
from pydantic import BaseModel, Field

from gateway.api.deps import Permission, app_part, require
from gateway.auth.guards import visible_camera
from gateway.live.service import (
    LiveDisabled,
    LiveService,
    StreamUnavailable,
    UnknownCamera,
    ViewerLimit,
)

MAX_SDP = 64 * 1024


class OfferIn(BaseModel):
    sdp: str = Field(..., min_length=1, max_length=MAX_SDP)
    type: Literal["offer"] = "offer"


class AnswerOut(BaseModel):
    session_id: str
    sdp: str
    type: Literal["answer"] = "answer"


class LiveCamera(BaseModel):
    camera_id: str
    viewers: int
    pulling: bool


CameraId = Annotated[str, Path(min_length=1, max_length=128)]


LiveDep = Annotated[LiveService, Depends(app_part("live"))]
# Live pictures show people: the live-view permission, and a camera in the caller's
# compounds (``visible_camera``).
router = APIRouter(
    prefix="/api/live",
    tags=["live"],
    dependencies=[Depends(require(Permission.LIVE_VIEW))],
)


@router.get("", summary="Cameras with live view and their viewers")
async def cameras(service: LiveDep) -> list[LiveCamera]:
    return [LiveCamera(**c) for c in service.describe()]


@router.post(
    "/{camera_id}/offer",
    summary="Start watching: post the browser's SDP offer, get the answer",
    responses={404: {}, 429: {}, 503: {}},
    dependencies=[Depends(visible_camera)],
)
async def offer(camera_id: CameraId, body: OfferIn, service: LiveDep) -> AnswerOut:
    try:
        answer = await service.offer(camera_id, body.sdp, body.type)
    except UnknownCamera:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no live view for this camera") from None
    except ViewerLimit as exc:
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, str(exc)) from None
    except (StreamUnavailable, LiveDisabled) as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    except ValueError as exc:  # aiortc rejects a malformed or unusable SDP
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"bad offer: {exc}") from None
    return AnswerOut(session_id=answer.session_id, sdp=answer.sdp)


@router.delete(
    "/{camera_id}/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Stop watching",
    dependencies=[Depends(visible_camera)],
)
async def close(
    camera_id: CameraId, session_id: Annotated[str, Path(max_length=64)], service: LiveDep
) -> Response:
    if not await service.close_session(camera_id, session_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such session")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
