"""``/api/profiles``, ``/api/quarantine/{id}/trial`` and ``/api/watches``: the integrator's
look at the wire (the console's quarantine page uses them). Raw payloads are shown, so every
route needs ``quarantine:read``; a watch sees the broker whole, so only an unscoped caller
may start one."""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from gateway.api import queries
from gateway.api.deps import CurrentPrincipal, DatabaseDep, Permission, app_part, require
from gateway.auth.principal import Principal
from gateway.watch.service import Wire
from gateway.watch.topics import (
    DEFAULT_DURATION_S,
    DEFAULT_MESSAGES,
    FILTER_MAX,
    MAX_DURATION_S,
    MAX_MESSAGES,
    WatchRefused,
)

router = APIRouter(
    prefix="/api", tags=["watch"], dependencies=[Depends(require(Permission.QUARANTINE_READ))]
)


WireDep = Annotated[Wire, Depends(app_part("wire"))]
WatchId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]


def _owner(principal: Principal) -> str:
    return principal.user_id or principal.name


class TrialIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    profile: str | None = Field(
        None, max_length=100, description="A running profile's id; none: the one taking the topic"
    )


class WatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: str = Field(..., min_length=1, max_length=FILTER_MAX, description="MQTT topic filter")
    duration_s: int = Field(DEFAULT_DURATION_S, ge=10, le=MAX_DURATION_S)
    max_messages: int = Field(DEFAULT_MESSAGES, ge=1, le=MAX_MESSAGES)


@router.get("/profiles")
async def profiles(wire: WireDep) -> list[dict[str, Any]]:
    """The running profiles (in the order the gateway tries them) and their subscriptions."""
    return wire.profiles()


@router.post("/quarantine/{record_id}/trial")
async def trial_quarantined(
    record_id: Annotated[int, Path(ge=1, le=2**62)],
    wire: WireDep,
    db: DatabaseDep,
    body: Annotated[TrialIn | None, Body()] = None,
) -> dict[str, Any]:
    """What a profile makes of a quarantined message's stored bytes now: the events, or the
    reason it would still be quarantined. Nothing is stored. ``truncated``: the stored bytes
    are only the start of the message (``ingest.quarantine_raw_bytes``)."""
    record = await db.run(queries.get_quarantined, record_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"quarantine record {record_id} not found")
    raw = base64.b64decode(record.raw_base64)
    profile = body.profile if body is not None else None
    if profile is None:
        verdict = wire.judge(record.topic, raw)
    else:
        found = wire.trial_with(profile, record.topic, raw)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no running profile {profile!r}")
        verdict = found
    return {**verdict.to_json(), "topic": record.topic, "truncated": record.raw_truncated}


@router.post("/watches", status_code=status.HTTP_201_CREATED)
async def start_watch(body: WatchIn, wire: WireDep, principal: CurrentPrincipal) -> dict[str, Any]:
    """Subscribe to ``filter`` for ``duration_s`` or ``max_messages``, whichever ends first
    (409: you have one running; 429: too many are running)."""
    if not principal.scope.everything:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "仅限全局账户 / a watch sees the whole broker: only callers not limited to compounds",
        )
    try:
        watch = wire.watches.start(
            _owner(principal), body.filter, duration_s=body.duration_s,
            max_messages=body.max_messages,
        )  # fmt: skip
    except WatchRefused as exc:
        raise HTTPException(exc.status, str(exc)) from None
    return watch.to_json()


@router.get("/watches")
async def my_watches(wire: WireDep, principal: CurrentPrincipal) -> list[dict[str, Any]]:
    """Your watches, running or ended (without their messages)."""
    return [
        {k: v for k, v in w.to_json(since=w.max_messages).items() if k != "messages"}
        for w in wire.watches.mine(_owner(principal))
    ]


@router.get("/watches/{watch_id}")
async def get_watch(
    watch_id: WatchId,
    wire: WireDep,
    principal: CurrentPrincipal,
    since: Annotated[int, Query(ge=0, le=MAX_MESSAGES, description="First message to return")] = 0,
) -> dict[str, Any]:
    """Your watch and what it saw (from message ``since`` on). Another person's watch
    answers 404, like a missing one."""
    watch = wire.watches.get(_owner(principal), watch_id)
    if watch is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no watch {watch_id!r}")
    return watch.to_json(since=since)


@router.delete("/watches/{watch_id}", status_code=status.HTTP_204_NO_CONTENT)
async def stop_watch(watch_id: WatchId, wire: WireDep, principal: CurrentPrincipal) -> Response:
    """End your watch; what it saw is forgotten at once."""
    if not wire.watches.stop(_owner(principal), watch_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no watch {watch_id!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
