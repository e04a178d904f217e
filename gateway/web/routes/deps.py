"""What the console's routes take: the console's view of the running gateway
(``app.state.web``, a ``WebContext``) and the signed-in console user."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status

from gateway.api.deps import Database, app_part
from gateway.incidents.queries import get_incident
from gateway.web.context import WebContext
from gateway.web.session import WebUser, can_see, current_user

WebDep = Annotated[WebContext, Depends(app_part("web"))]


async def web_user(request: Request, ctx: WebDep) -> WebUser:
    """The console user of this request (401 without a console session)."""
    user = await current_user(request, ctx.grid)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "sign in to the console first")
    return user


UserDep = Annotated[WebUser, Depends(web_user)]


async def scoped_incident(ctx: WebContext, incident_id: int, user: WebUser) -> dict[str, Any]:
    """The incident, or 404 when missing *or* outside the user's scope (alike, so ids of
    other grids cannot be probed)."""
    found = await Database(ctx.engine).run(get_incident, incident_id)
    if found is None or not can_see(user, found, ctx.grid):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"未找到 / no incident {incident_id}")
    return found


def need(user: WebUser, page: str) -> None:
    """403 unless the user's role may open the console page these routes serve."""
    if not user.may_open(page):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"the {page} page is not for your role")
