"""Health probes for load balancers and supervisors, answered without login (issue 16):

- ``GET /healthz``: the process is alive and serving HTTP → 200 ``ok``.
- ``GET /readyz``: this worker can serve: the database answers ``SELECT 1`` (within
  ``READY_DB_TIMEOUT_S``) and the broker is connected → 200 ``ok``, else 503
  ``unavailable``.

The bodies say nothing else (no addresses, versions, counts or errors): anyone may call
these. The detailed report is ``/api/health``, behind login.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from gateway.api.deps import Database, RuntimeDep

READY_DB_TIMEOUT_S = 2.0
NO_STORE = {"Cache-Control": "no-store"}

router = APIRouter(include_in_schema=False)


def _answer(ok: bool) -> PlainTextResponse:
    if ok:
        return PlainTextResponse("ok", headers=NO_STORE)
    return PlainTextResponse("unavailable", status_code=503, headers=NO_STORE)


@router.get("/healthz")
async def healthz() -> PlainTextResponse:
    return _answer(True)


@router.get("/readyz")
async def readyz(runtime: RuntimeDep) -> PlainTextResponse:
    try:
        broker = runtime.health().broker.connected
    except Exception:  # a runtime that cannot say is not ready
        broker = False
    if not broker:
        return _answer(False)
    database = await Database(runtime.engine).check(READY_DB_TIMEOUT_S)
    return _answer(database.ok)
