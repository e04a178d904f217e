"""``/api/auth`` (login, logout, me, own API tokens), ``/api/users`` (administration) and
``/api/audit`` (read and verify the audit log).

``public_router`` (login only) is mounted without authentication; ``routers`` behind it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, Field
from sqlalchemy import Engine, select

from gateway.api.deps import SESSION_COOKIE, CurrentPrincipal, credential_of, require
from gateway.audit.tables import audit_log
from gateway.auth.principal import Permission
from gateway.auth.ratelimit import limiter_of, too_many
from gateway.auth.roles import AccountRole
from gateway.auth.scope import SCOPE_KEYS
from gateway.auth.service import (
    SESSION_PREFIX,
    Actor,
    AuthService,
    InvalidAccount,
    LoginFailed,
    NotFound,
)
from gateway.auth.signin import LoginThrottled
from gateway.ids import Id, Name


def _client(request: Request) -> str:
    return request.client.host if request.client else ""


def _auth(request: Request) -> AuthService:
    auth: AuthService = request.app.state.auth
    return auth


AuthDep = Annotated[AuthService, Depends(_auth)]

# -- models -----------------------------------------------------------------------------


class LoginIn(BaseModel):
    username: str = Field(..., min_length=1, max_length=64)
    password: str = Field(..., min_length=1, max_length=256)


class UserOut(BaseModel):
    id: str
    username: str
    display_name: str = ""
    role: AccountRole
    person_id: str | None = None
    household_id: str | None = None
    scopes: dict[str, list[str]] = Field(default_factory=dict)
    active: bool = True
    locked_until: datetime | None = None


class LoginOut(BaseModel):
    token: str = Field(..., description="Session id: also set as the HttpOnly cookie")
    user: UserOut
    permissions: list[str]


class MeOut(BaseModel):
    name: str
    actor: str
    role: str
    permissions: list[str]
    via: str = Field(..., description="session | token")


class Scopes(BaseModel):
    streets: list[Id] = Field(default_factory=list, max_length=200)
    communities: list[Id] = Field(default_factory=list, max_length=200)
    cells: list[Id] = Field(default_factory=list, max_length=500)
    beats: list[Id] = Field(default_factory=list, max_length=200)
    sites: list[Id] = Field(default_factory=list, max_length=500)


class UserIn(BaseModel):
    username: Id = Field(..., description="a-z 0-9 . _ - @ (the id grammar, lower case)")
    password: str | None = Field(None, max_length=256, description="None: token-only account")
    role: AccountRole
    display_name: Name = Field("", max_length=100)
    person_id: Id | None = Field(None, description="Grid person (their scopes)")
    household_id: Id | None = Field(None, description="Residents")
    scopes: Scopes = Field(default_factory=Scopes)


class UserPatch(BaseModel):
    role: AccountRole | None = None
    display_name: Name | None = Field(None, max_length=100)
    person_id: Id | None = None
    household_id: Id | None = None
    scopes: Scopes | None = None
    active: bool | None = None
    password: str | None = Field(None, max_length=256)


class TokenIn(BaseModel):
    name: Name = Field(..., min_length=1, max_length=100)
    permissions: list[Permission] | None = Field(
        None, description="A subset of your role's permissions; omitted: all of them"
    )
    expires_at: datetime | None = None


class TokenOut(BaseModel):
    id: str
    user_id: str
    name: str
    permissions: list[str]
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class NewTokenOut(TokenOut):
    token: str = Field(..., description="Shown once; store it now")


class AuditRow(BaseModel):
    id: int
    at: datetime
    actor: str
    role: str
    source_ip: str
    action: str
    target: str
    status: int | None
    before: Any = None
    after: Any = None
    prev_hash: str
    hash: str


class VerifyOut(BaseModel):
    ok: bool
    checked: int
    bad_row: int | None = None
    reason: str = ""
    checkpoint: str = Field("", description="How the chain's end compared with the checkpoint")


def _bad(exc: Exception) -> HTTPException:
    if isinstance(exc, NotFound):
        return HTTPException(status.HTTP_404_NOT_FOUND, str(exc))
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))


# -- login ------------------------------------------------------------------------------

public_router = APIRouter(prefix="/api/auth", tags=["auth"])


@public_router.post(
    "/login",
    responses={
        401: {"description": "Wrong user name or password (alike)"},
        429: {"description": "Too many tries from this address, or failed ones: Retry-After"},
    },
)
async def login(body: LoginIn, request: Request, response: Response, auth: AuthDep) -> LoginOut:
    """Log in with user name and password: sets the HttpOnly, SameSite=Strict session cookie
    for the console and returns the same session id for use as a bearer token. Limited per
    client address; failures delay further tries from the failing address (growing delays,
    429 with Retry-After), never locking the account: its owner signs in from elsewhere."""
    limiter = limiter_of(request)
    ip = _client(request)
    if not auth.signin.throttle.known(body.username.strip().lower()[:64], ip):
        wait = limiter.hit(auth.config.login_rate, "login", ip)
        if wait is not None:
            raise too_many(wait)
    try:
        token, principal = await anyio.to_thread.run_sync(
            auth.login, body.username, body.password, ip
        )
    except LoginThrottled as exc:
        raise too_many(exc.retry_after_s) from None
    except LoginFailed as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": "Bearer"}
        ) from None
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(auth.config.session_hours * 3600),
        httponly=True,
        secure=auth.config.cookie_secure,
        samesite="strict",
        path="/",
    )
    response.headers["Cache-Control"] = "no-store"
    user = await anyio.to_thread.run_sync(auth.get_user, principal.user_id or "")
    return LoginOut(
        token=token, user=UserOut(**(user or {})), permissions=sorted(principal.permissions)
    )


# -- session, me, own tokens ------------------------------------------------------------

account_router = APIRouter(prefix="/api/auth", tags=["auth"])


@account_router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(request: Request, principal: CurrentPrincipal, auth: AuthDep) -> Response:
    """End this session (cookie or bearer session id). API tokens are revoked instead."""
    credential = credential_of(request) or ""
    if credential.startswith(SESSION_PREFIX):
        await anyio.to_thread.run_sync(
            auth.logout, credential, Actor.of(principal, _client(request))
        )
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@account_router.get("/me")
async def me(principal: CurrentPrincipal) -> MeOut:
    return MeOut(
        name=principal.name,
        actor=principal.actor,
        role=principal.role,
        permissions=sorted(principal.permissions),
        via="token" if principal.token_id else "session",
    )


_tokens = [Depends(require(Permission.TOKENS_CREATE))]


@account_router.get("/tokens", dependencies=_tokens)
async def my_tokens(principal: CurrentPrincipal, auth: AuthDep) -> list[TokenOut]:
    rows = await anyio.to_thread.run_sync(auth.list_tokens, principal.user_id)
    return [TokenOut(**r) for r in rows]


@account_router.post("/tokens", status_code=status.HTTP_201_CREATED, dependencies=_tokens)
async def create_token(
    body: TokenIn, request: Request, principal: CurrentPrincipal, auth: AuthDep
) -> NewTokenOut:
    """A scoped API token for an integration: at most your own permissions."""
    if principal.token_id is not None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "令牌不能再创建令牌 / a token cannot create tokens"
        )
    perms = None if body.permissions is None else [p.value for p in body.permissions]
    try:
        token, row = await anyio.to_thread.run_sync(
            lambda: auth.create_token(
                principal.user_id or "",
                body.name,
                Actor.of(principal, _client(request)),
                permissions=perms,
                expires_at=body.expires_at,
            )
        )
    except (InvalidAccount, NotFound) as exc:
        raise _bad(exc) from None
    return NewTokenOut(token=token, **row)


@account_router.delete(
    "/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, responses={404: {}}
)
async def revoke_token(
    token_id: Annotated[str, Path(max_length=32)],
    request: Request,
    principal: CurrentPrincipal,
    auth: AuthDep,
) -> Response:
    """Revoke one of your tokens (administrators: anyone's)."""
    owner = None if principal.allows(Permission.USERS_MANAGE) else principal.user_id or "-"
    done = await anyio.to_thread.run_sync(
        lambda: auth.revoke_token(token_id, Actor.of(principal, _client(request)), owner=owner)
    )
    if not done:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "未找到 / no such active token")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- users (administrators) -------------------------------------------------------------

users_router = APIRouter(
    prefix="/api/users", tags=["users"], dependencies=[Depends(require(Permission.USERS_MANAGE))]
)


def _scopes(s: Scopes | None) -> dict[str, list[str]]:
    if s is None:
        return {}
    return {k: v for k in SCOPE_KEYS if (v := list(getattr(s, k)))}


@users_router.get("")
async def list_users(auth: AuthDep) -> list[UserOut]:
    return [UserOut(**u) for u in await anyio.to_thread.run_sync(auth.list_users)]


@users_router.post("", status_code=status.HTTP_201_CREATED, responses={422: {}})
async def create_user(
    body: UserIn, request: Request, principal: CurrentPrincipal, auth: AuthDep
) -> UserOut:
    try:
        user = await anyio.to_thread.run_sync(
            lambda: auth.create_user(
                body.username,
                body.password,
                body.role,
                Actor.of(principal, _client(request)),
                display_name=body.display_name,
                person_id=body.person_id,
                household_id=body.household_id,
                scopes=_scopes(body.scopes),
            )
        )
    except InvalidAccount as exc:
        raise _bad(exc) from None
    return UserOut(**user)


@users_router.get("/{user_id}", responses={404: {}})
async def get_user(user_id: str, auth: AuthDep) -> UserOut:
    user = await anyio.to_thread.run_sync(auth.get_user, user_id)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "未找到 / no such user")
    return UserOut(**user)


@users_router.patch("/{user_id}", responses={404: {}, 422: {}})
async def update_user(
    user_id: str, body: UserPatch, request: Request, principal: CurrentPrincipal, auth: AuthDep
) -> UserOut:
    """Change role, scopes, links, active flag or password; ends the user's sessions when
    the role, password or active flag changes."""
    changes: dict[str, Any] = body.model_dump(exclude_unset=True, exclude={"scopes"})
    if body.scopes is not None:
        changes["scopes"] = _scopes(body.scopes)
    if changes.get("role") is not None:
        changes["role"] = AccountRole(changes["role"])
    changes = {
        k: v for k, v in changes.items() if v is not None or k in ("person_id", "household_id")
    }
    try:
        user = await anyio.to_thread.run_sync(
            lambda: auth.update_user(user_id, Actor.of(principal, _client(request)), **changes)
        )
    except (InvalidAccount, NotFound) as exc:
        raise _bad(exc) from None
    return UserOut(**user)


class UnlockOut(BaseModel):
    id: str
    username: str
    cleared: int = Field(..., description="Throttle keys cleared (name × address, name)")


@users_router.post("/{user_id}/unlock", responses={404: {}})
async def unlock_user(
    user_id: Annotated[str, Path(max_length=32)],
    request: Request,
    principal: CurrentPrincipal,
    auth: AuthDep,
) -> UnlockOut:
    """Clear an account's failed sign-ins: every address's delay for it ends now
    (audited as ``user.unlock``). Sessions are not touched."""
    try:
        done = await anyio.to_thread.run_sync(
            lambda: auth.unlock(user_id, Actor.of(principal, _client(request)))
        )
    except NotFound as exc:
        raise _bad(exc) from None
    return UnlockOut(**done)


@users_router.get("/{user_id}/tokens", responses={404: {}})
async def user_tokens(user_id: str, auth: AuthDep) -> list[TokenOut]:
    return [TokenOut(**r) for r in await anyio.to_thread.run_sync(auth.list_tokens, user_id)]


# -- audit ------------------------------------------------------------------------------

audit_router = APIRouter(
    prefix="/api/audit", tags=["audit"], dependencies=[Depends(require(Permission.AUDIT_READ))]
)


def _audit_rows(engine: Engine, after: int, limit: int) -> list[dict[str, Any]]:
    stmt = select(audit_log).where(audit_log.c.id > after).order_by(audit_log.c.id).limit(limit)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


@audit_router.get("")
async def list_audit(
    auth: AuthDep,
    after: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditRow]:
    """Audit rows in order, from ``after`` (an id) on."""
    rows = await anyio.to_thread.run_sync(_audit_rows, auth.audit.engine, after, limit)
    return [AuditRow(**r) for r in rows]


@audit_router.get("/verify")
async def verify_audit(auth: AuthDep) -> VerifyOut:
    """Walk the hash chain; report the first altered, moved or missing row, and rows cut
    from the end after the last checkpoint."""
    result = await anyio.to_thread.run_sync(auth.audit.verify)
    return VerifyOut(
        ok=result.ok,
        checked=result.checked,
        bad_row=result.bad_row,
        reason=result.reason,
        checkpoint=result.checkpoint,
    )


routers: list[APIRouter] = [account_router, users_router, audit_router]

__all__ = ["public_router", "routers"]
