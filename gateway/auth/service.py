"""Accounts: users, console sessions, API tokens, sign-in throttling, and principal resolution.

Blocking functions (run them in a worker thread from async code). Every change is written
to the audit log in the same transaction, with before/after.

Credentials handed out:

- console sessions: ``lfs_<random>``, sent as the HttpOnly ``lianfang_session`` cookie (and
  returned once by the login route for API clients, as a bearer token);
- API tokens: ``lft_<id>_<random>``, bearer tokens for integrations, limited to a subset of
  the owner's permissions, revocable, optionally expiring.

Only SHA-256 digests of both are stored.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from gateway.audit.chain import AuditEntry, AuditLog
from gateway.auth.config import AuthConfig
from gateway.auth.passwords import hash_password, needs_rehash, verify_password
from gateway.auth.principal import Principal
from gateway.auth.roles import AccountRole, permissions_of
from gateway.auth.scope import SCOPE_KEYS, resolve_scope
from gateway.auth.signin import SignInGuard
from gateway.auth.tables import api_tokens, auth_sessions, users
from gateway.grid.directory import GridDirectory
from gateway.ids import is_id, name_problem

log = logging.getLogger(__name__)

SESSION_PREFIX = "lfs_"
TOKEN_PREFIX = "lft_"
ADMIN_USER_ENV = "LIANFANG_ADMIN_USER"
ADMIN_PASSWORD_ENV = "LIANFANG_ADMIN_PASSWORD"
GRID_CACHE_S = 5.0
USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-@")


class AuthError(Exception):
    """Base of the account errors; ``str()`` is a bilingual message for the caller."""


class LoginFailed(AuthError):
    pass


class InvalidAccount(AuthError, ValueError):
    pass


class NotFound(AuthError, LookupError):
    pass


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a change (for the audit log)."""

    name: str
    role: str = ""
    source_ip: str = ""

    @classmethod
    def of(cls, principal: Principal, source_ip: str = "") -> Actor:
        return cls(principal.actor, principal.role, source_ip)


CLI = Actor("cli", "administrator", "local")


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def public_user(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A user as shown to administrators: never the password hash."""
    return {
        "id": row["id"],
        "username": row["username"],
        "display_name": row["display_name"],
        "role": row["role"],
        "person_id": row["person_id"],
        "household_id": row["household_id"],
        "scopes": row["scopes"] or {},
        "active": bool(row["active"]),
        "locked_until": _utc(row["locked_until"]),
    }


class AuthService:
    """Args:
    engine: the gateway database (migrated).
    audit: where changes and logins are recorded.
    config: lifetimes, lockout, rates.
    grid: the current grid directory (the incidents runtime's); ``None`` reads it from the
        database, cached for a few seconds.
    clock: injected in tests.
    """

    def __init__(
        self,
        engine: Engine,
        audit: AuditLog,
        config: AuthConfig | None = None,
        *,
        grid: Callable[[], GridDirectory] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.engine = engine
        self.audit = audit
        self.clock = clock
        self.signin = SignInGuard(audit, config or AuthConfig(), clock)
        self.config = config or AuthConfig()
        self._grid = grid
        self._grid_cache: tuple[float, GridDirectory] | None = None

    @property
    def config(self) -> AuthConfig:
        return self._config

    @config.setter
    def config(self, config: AuthConfig) -> None:
        self._config = config
        self.signin.configure(config)

    # -- grid ------------------------------------------------------------------------------
    def grid(self) -> GridDirectory:
        if self._grid is not None:
            return self._grid()
        now = time.monotonic()
        if self._grid_cache is None or now - self._grid_cache[0] > GRID_CACHE_S:
            from gateway.grid.store import read_directory

            self._grid_cache = (now, read_directory(self.engine))
        return self._grid_cache[1]

    # -- users -----------------------------------------------------------------------------
    def _check_password(self, password: str) -> None:
        if len(password) < self.config.min_password_length:
            raise InvalidAccount(
                f"密码至少 {self.config.min_password_length} 位 / password needs at least "
                f"{self.config.min_password_length} characters"
            )

    def create_user(
        self,
        username: str,
        password: str | None,
        role: AccountRole,
        actor: Actor,
        *,
        display_name: str = "",
        person_id: str | None = None,
        household_id: str | None = None,
        scopes: Mapping[str, Sequence[str]] | None = None,
    ) -> dict[str, Any]:
        username = username.strip().lower()
        if not is_id(username) or not set(username) <= USERNAME_CHARS:
            raise InvalidAccount(
                "用户名无效 / invalid username (a-z 0-9 . _ - @, starting with a letter or digit)"
            )
        if (problem := name_problem(display_name)) is not None:
            raise InvalidAccount(f"显示名无效 / display_name: {problem}")
        if password is not None:
            self._check_password(password)
        if role is AccountRole.RESIDENT and not household_id:
            raise InvalidAccount("居民账户需要住户 / a resident account needs a household_id")
        clean_scopes = {k: list(v) for k, v in (scopes or {}).items() if v}
        unknown = set(clean_scopes) - set(SCOPE_KEYS)
        if unknown:
            raise InvalidAccount(f"unknown scope keys: {sorted(unknown)}")
        now = self.clock()
        row = {
            "id": secrets.token_hex(8),
            "username": username,
            "display_name": display_name,
            "password_hash": hash_password(password) if password is not None else None,
            "role": role.value,
            "person_id": person_id,
            "household_id": household_id,
            "scopes": clean_scopes,
            "active": True,
            "failed_logins": 0,
            "locked_until": None,
            "created_at": now,
            "updated_at": now,
        }
        with self.audit.transaction() as conn:
            if conn.execute(select(users.c.id).where(users.c.username == username)).first():
                raise InvalidAccount(f"用户名已存在 / user {username!r} exists")
            conn.execute(insert(users), [row])
            self._audit(conn, actor, "user.create", f"user:{row['id']}", None, public_user(row))
        return public_user(row)

    def update_user(self, user_id: str, actor: Actor, **changes: Any) -> dict[str, Any]:
        """Change role, scopes, person/household link, display name, active, password."""
        allowed = {"role", "scopes", "person_id", "household_id", "display_name", "active"}
        password = changes.pop("password", None)
        bad = set(changes) - allowed
        if bad:
            raise InvalidAccount(f"cannot change {sorted(bad)}")
        if "role" in changes:
            changes["role"] = AccountRole(changes["role"]).value
        if (problem := name_problem(str(changes.get("display_name") or ""))) is not None:
            raise InvalidAccount(f"显示名无效 / display_name: {problem}")
        values: dict[str, Any] = dict(changes)
        if password is not None:
            self._check_password(password)
            values["password_hash"] = hash_password(password)
            values["failed_logins"] = 0
            values["locked_until"] = None
        values["updated_at"] = self.clock()
        with self.audit.transaction() as conn:
            before = conn.execute(select(users).where(users.c.id == user_id)).first()
            if before is None:
                raise NotFound(f"no user {user_id}")
            conn.execute(update(users).where(users.c.id == user_id).values(**values))
            after = conn.execute(select(users).where(users.c.id == user_id)).one()
            if values.get("active") is False or password is not None or "role" in changes:
                conn.execute(delete(auth_sessions).where(auth_sessions.c.user_id == user_id))
            summary = public_user(after._mapping) | {"password_changed": password is not None}
            self._audit(
                conn, actor, "user.update", f"user:{user_id}", public_user(before._mapping), summary
            )
        return public_user(after._mapping)

    def get_user(self, user_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
        return None if row is None else public_user(row._mapping)

    def list_users(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(users).order_by(users.c.username)).all()
        return [public_user(r._mapping) for r in rows]

    def has_users(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(select(users.c.id).limit(1)).first() is not None

    def bootstrap_admin_from_env(self) -> dict[str, Any] | None:
        """With no accounts yet, create the first administrator from ``LIANFANG_ADMIN_USER``
        and ``LIANFANG_ADMIN_PASSWORD`` (there is no default password anywhere)."""
        name, password = os.environ.get(ADMIN_USER_ENV), os.environ.get(ADMIN_PASSWORD_ENV)
        if not name or not password or self.has_users():
            return None
        user = self.create_user(
            name, password, AccountRole.ADMINISTRATOR, Actor("environment", "", "local")
        )
        log.info("first administrator %r created from the environment", user["username"])
        return user

    # -- login and sessions ----------------------------------------------------------------
    def login(self, username: str, password: str, source_ip: str = "") -> tuple[str, Principal]:
        """Check the password; on success a new session (token, principal). Failures slow
        further tries down (``gateway.auth.throttle``: per name × address, per address, per
        name) without ever locking the account; unknown and existing names are answered
        alike. Successes are audited at once, failures aggregated per interval (never the
        password)."""
        name = username.strip().lower()[:64]
        self.signin.flush()
        with self.engine.connect() as conn:
            row = conn.execute(select(users).where(users.c.username == name)).first()
        target = f"user:{row.id}" if row is not None else f"user:{name}"
        role = row.role if row is not None else ""
        self.signin.check(name, source_ip, target=target, role=role)  # may raise
        stored = row.password_hash if row is not None else None
        ok = verify_password(stored, password)  # the same work for unknown names
        if row is None or not row.active or not ok:
            self.signin.failed(name, source_ip, target=target, role=role)
            raise LoginFailed("用户名或密码错误 / wrong user name or password")
        now = self.clock()
        values: dict[str, Any] = {"failed_logins": 0, "locked_until": None}
        if stored is not None and needs_rehash(stored):
            values["password_hash"] = hash_password(password)
        token = SESSION_PREFIX + secrets.token_urlsafe(32)
        with self.audit.transaction() as conn:
            current = conn.execute(select(users).where(users.c.id == row.id)).first()
            if current is None or not current.active or current.password_hash != stored:
                raise LoginFailed("用户名或密码错误 / wrong user name or password")
            conn.execute(update(users).where(users.c.id == row.id).values(**values))
            conn.execute(
                insert(auth_sessions),
                [
                    {
                        "id_hash": _digest(token),
                        "user_id": row.id,
                        "created_at": now,
                        "expires_at": now + timedelta(hours=self.config.session_hours),
                        "source_ip": source_ip[:64],
                    }
                ],
            )
            who = Actor(name or "?", role, source_ip)
            self._audit(conn, who, "auth.login", target, None, None, 200)
            principal = self._principal(conn, current._mapping, session_id=_digest(token)[:16])
        self.signin.succeeded(name, source_ip)
        return token, principal

    def unlock(self, user_id: str, actor: Actor) -> dict[str, Any]:
        """An administrator clears an account's failed sign-ins (every address's delay for
        it, and a lock set by an older version), audited."""
        with self.audit.transaction() as conn:
            row = conn.execute(select(users).where(users.c.id == user_id)).first()
            if row is None:
                raise NotFound(f"no user {user_id}")
            cleared = self.signin.unlock(row.username)
            conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(failed_logins=0, locked_until=None, updated_at=self.clock())
            )
            self._audit(
                conn, actor, "user.unlock", f"user:{user_id}", None, {"cleared_keys": cleared}
            )
        return {"id": user_id, "username": row.username, "cleared": cleared}

    def flush_failed_logins(self, *, force: bool = False) -> int:
        """Write the aggregated failed sign-ins of finished intervals (all with ``force``,
        at shutdown). Returns the rows written."""
        return self.signin.flush(force=force)

    def logout(self, token: str, actor: Actor) -> bool:
        with self.audit.transaction() as conn:
            result = conn.execute(
                delete(auth_sessions).where(auth_sessions.c.id_hash == _digest(token))
            )
            if result.rowcount:
                self._audit(conn, actor, "auth.logout", "session", None, None, 200)
        return bool(result.rowcount)

    # -- API tokens ------------------------------------------------------------------------
    def create_token(
        self,
        user_id: str,
        name: str,
        actor: Actor,
        *,
        permissions: Sequence[str] | None = None,
        expires_at: datetime | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """A new token for ``user_id``; the secret is returned once and never stored."""
        with self.audit.transaction() as conn:
            owner = conn.execute(select(users).where(users.c.id == user_id)).first()
            if owner is None:
                raise NotFound(f"no user {user_id}")
            role_perms = permissions_of(AccountRole(owner.role))
            wanted = set(permissions) if permissions is not None else set(role_perms)
            extra = wanted - role_perms
            if extra:
                raise InvalidAccount(
                    f"令牌权限超出角色 / token permissions beyond the role: {sorted(extra)}"
                )
            token_id = secrets.token_hex(8)
            secret = secrets.token_urlsafe(32)
            row = {
                "id": token_id,
                "user_id": user_id,
                "name": name[:100],
                "secret_hash": _digest(secret),
                "permissions": sorted(wanted),
                "created_at": self.clock(),
                "expires_at": _utc(expires_at),
                "revoked_at": None,
                "last_used_at": None,
            }
            conn.execute(insert(api_tokens), [row])
            shown = _public_token(row)
            self._audit(conn, actor, "token.create", f"token:{token_id}", None, shown)
        return f"{TOKEN_PREFIX}{token_id}_{secret}", shown

    def list_tokens(self, user_id: str | None = None) -> list[dict[str, Any]]:
        stmt = select(api_tokens).order_by(api_tokens.c.created_at)
        if user_id is not None:
            stmt = stmt.where(api_tokens.c.user_id == user_id)
        with self.engine.connect() as conn:
            return [_public_token(r._mapping) for r in conn.execute(stmt)]

    def revoke_token(self, token_id: str, actor: Actor, *, owner: str | None = None) -> bool:
        """Revoke a token (only ``owner``'s when given). False when there is none to revoke."""
        with self.audit.transaction() as conn:
            stmt = select(api_tokens).where(api_tokens.c.id == token_id)
            if owner is not None:
                stmt = stmt.where(api_tokens.c.user_id == owner)
            row = conn.execute(stmt).first()
            if row is None or row.revoked_at is not None:
                return False
            conn.execute(
                update(api_tokens)
                .where(api_tokens.c.id == token_id)
                .values(revoked_at=self.clock())
            )
            self._audit(
                conn, actor, "token.revoke", f"token:{token_id}", _public_token(row._mapping), None
            )
        return True

    # -- resolution ------------------------------------------------------------------------
    def principal_for(self, credential: str) -> Principal | None:
        """The principal behind a session id or API token; None when unknown, expired,
        revoked, or the account is disabled."""
        now = self.clock()
        with self.engine.begin() as conn:
            if credential.startswith(SESSION_PREFIX):
                s = conn.execute(
                    select(auth_sessions).where(auth_sessions.c.id_hash == _digest(credential))
                ).first()
                if s is None or (_utc(s.expires_at) or now) <= now:
                    return None
                user = conn.execute(select(users).where(users.c.id == s.user_id)).first()
                if user is None or not user.active:
                    return None
                return self._principal(conn, user._mapping, session_id=s.id_hash[:16])
            if credential.startswith(TOKEN_PREFIX):
                token_id, _, secret = credential[len(TOKEN_PREFIX) :].partition("_")
                t = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).first()
                if t is None or t.revoked_at is not None:
                    return None
                if not hmac.compare_digest(t.secret_hash, _digest(secret)):
                    return None
                expires = _utc(t.expires_at)
                if expires is not None and expires <= now:
                    return None
                user = conn.execute(select(users).where(users.c.id == t.user_id)).first()
                if user is None or not user.active:
                    return None
                conn.execute(
                    update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=now)
                )
                return self._principal(
                    conn, user._mapping, token_id=token_id, limit=frozenset(t.permissions or ())
                )
        return None

    def _principal(
        self,
        conn: Connection,
        user: Mapping[Any, Any],
        *,
        session_id: str | None = None,
        token_id: str | None = None,
        limit: frozenset[str] | None = None,
    ) -> Principal:
        role = AccountRole(user["role"])
        assignments: dict[str, list[str]] = {k: list(v) for k, v in (user["scopes"] or {}).items()}
        person_id = user["person_id"]
        if person_id:
            from gateway.grid.tables import grid_people

            person = conn.execute(
                select(grid_people.c.scopes, grid_people.c.active).where(
                    grid_people.c.id == person_id
                )
            ).first()
            if person is not None and person.active:
                for key, values in (person.scopes or {}).items():
                    assignments.setdefault(key, []).extend(values)
        actor = person_id or user["username"]
        scope = resolve_scope(
            role, assignments, self.grid(), household=user["household_id"], actor=actor
        )
        permissions = permissions_of(role)
        if limit is not None:
            permissions = permissions & limit
        return Principal(
            name=user["username"],
            permissions=permissions,
            role=role.value,
            user_id=user["id"],
            person_id=person_id,
            scope=scope,
            token_id=token_id,
            session_id=session_id,
        )

    def purge_sessions(self) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(
                delete(auth_sessions).where(auth_sessions.c.expires_at < self.clock())
            )
        return int(result.rowcount or 0)

    # -- audit -----------------------------------------------------------------------------
    def _audit(
        self,
        conn: Connection,
        actor: Actor,
        action: str,
        target: str,
        before: Any,
        after: Any,
        status: int | None = None,
    ) -> None:
        self.audit.append_in(
            conn,
            AuditEntry(
                actor=actor.name,
                role=actor.role,
                source_ip=actor.source_ip,
                action=action,
                target=target,
                status=status,
                before=before,
                after=after,
            ),
        )


def _public_token(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "user_id": row["user_id"],
        "name": row["name"],
        "permissions": list(row["permissions"] or ()),
        "created_at": _utc(row["created_at"]),
        "expires_at": _utc(row["expires_at"]),
        "revoked_at": _utc(row["revoked_at"]),
        "last_used_at": _utc(row["last_used_at"]),
    }
