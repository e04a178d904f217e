"""The console's HTML pages and static files (server-rendered shells, small ES modules).

Pages are not behind the API's authentication seam (the sign-in page must open without a
session); each page checks the console user itself and sends strangers to ``/login``.
"""

from __future__ import annotations

import mimetypes
from importlib import resources
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from gateway import __version__
from gateway.api.deps import Database
from gateway.auth.service import SESSION_PREFIX, Actor
from gateway.events import DeviceKind
from gateway.incidents.categories import IncidentCategory, Severity, Source
from gateway.incidents.queries import get_incident
from gateway.web.embed import json_script
from gateway.web.i18n import catalogue, pick_lang, translate
from gateway.web.routes.deps import WebDep
from gateway.web.session import (
    LANG_COOKIE,
    PAGE_ORDER,
    SESSION_COOKIE,
    WebUser,
    can_see,
    current_user,
)

HERE = Path(str(resources.files("gateway.web")))
STATIC = HERE / "static"
CSP = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; "
    "connect-src 'self'; style-src 'self'; script-src 'self'; object-src 'none'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
PHONE_PAGES = {"grid", "resident"}

env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
# The vocabularies the forms offer (their labels: gateway/web/terms.py and i18n.py).
env.globals.update(
    kinds=[k.value for k in DeviceKind],
    categories=[c.value for c in IncidentCategory],
    severities=[s.value for s in Severity],
    sources=[s.value for s in Source],
)


def _lang(request: Request) -> str:
    return pick_lang(request.query_params.get("lang") or request.cookies.get(LANG_COOKIE))


def render(
    request: Request,
    template: str,
    *,
    user: WebUser | None,
    page: str,
    status_code: int = 200,
    **values: Any,
) -> HTMLResponse:
    lang = _lang(request)
    html = env.get_template(template).render(
        t=lambda key: translate(lang, key),
        lang=lang,
        other_lang="en" if lang == "zh" else "zh",
        user=user,
        nav=[p for p in PAGE_ORDER if user and user.may_open(p)],
        page=page,
        phone=page in PHONE_PAGES,
        version=__version__,
        i18n=json_script(catalogue(lang)),
        me=json_script(user.public() if user else None),
        **values,
    )
    response = HTMLResponse(html, status_code=status_code, headers=HEADERS)
    if "lang" in request.query_params:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax")
    return response


router = APIRouter(include_in_schema=False)


def forbidden(request: Request, user: WebUser | None) -> HTMLResponse:
    return render(
        request, "message.html", user=user, page="forbidden", status_code=403,
        title_key="forbidden.title", text_key="forbidden.text",
    )  # fmt: skip


@router.get("/")
async def home(request: Request, ctx: WebDep) -> Response:
    user = await current_user(request, ctx.grid)
    if user is None:
        return RedirectResponse("/login", status.HTTP_303_SEE_OTHER)
    return RedirectResponse(f"/console/{user.home}", status.HTTP_303_SEE_OTHER)


@router.get("/login")
async def login_page(request: Request) -> HTMLResponse:
    """The sign-in form; it posts to ``POST /api/auth/login`` (static/js/login.js)."""
    return render(request, "login.html", user=None, page="login")


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Sign out in one step (the header's form posts here, no script): end the session on
    the server as ``POST /api/auth/logout`` does (audited as ``auth.logout``), clear the
    cookie, back to the sign-in page. The cookie is SameSite=Strict: another site's form
    cannot sign anyone out."""
    token = request.cookies.get(SESSION_COOKIE) or ""
    auth = getattr(request.app.state, "auth", None)
    if auth is not None and token.startswith(SESSION_PREFIX) and len(token) <= 512:
        principal = await anyio.to_thread.run_sync(auth.principal_for, token)
        if principal is not None:
            client = request.client.host if request.client else ""
            await anyio.to_thread.run_sync(auth.logout, token, Actor.of(principal, client))
    response = RedirectResponse("/login", status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/console/incidents/{incident_id}")
async def incident_page(request: Request, incident_id: int, ctx: WebDep) -> Response:
    user = await current_user(request, ctx.grid)
    if user is None:
        return RedirectResponse("/login", status.HTTP_303_SEE_OTHER)
    found = await Database(ctx.engine).run(get_incident, incident_id)
    if found is None or not can_see(user, found, ctx.grid):  # alike: ids cannot be probed
        return render(
            request, "message.html", user=user, page="notfound", status_code=404,
            title_key="notfound.title", text_key="notfound.title",
        )  # fmt: skip
    return render(request, "incident.html", user=user, page="incident", incident_id=incident_id)


@router.get("/console/{page}")
async def console_page(request: Request, page: str, ctx: WebDep) -> Response:
    user = await current_user(request, ctx.grid)
    if user is None:
        return RedirectResponse("/login", status.HTTP_303_SEE_OTHER)
    if page not in PAGE_ORDER:
        raise HTTPException(status.HTTP_404_NOT_FOUND)
    if not user.may_open(page):
        return forbidden(request, user)
    return render(request, f"{page}.html", user=user, page=page)


@router.get("/static/{path:path}")
async def static(path: str) -> Response:
    target = (STATIC / path).resolve()
    if not target.is_file() or STATIC.resolve() not in target.parents:
        raise HTTPException(status.HTTP_404_NOT_FOUND)
    media = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    if target.suffix == ".js":
        media = "text/javascript"
    return FileResponse(
        target,
        media_type=media,
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
