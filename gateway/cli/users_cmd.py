"""``lianfang users``: the first administrator, accounts and API tokens from the shell.

Passwords are prompted (hidden, twice) or read from ``LIANFANG_ADMIN_PASSWORD``; there is
no default password anywhere. Every change is written to the audit log as ``cli``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from gateway.cli._db import ConfigOpt, DatabaseOpt, DataDirOpt, open_audit

if TYPE_CHECKING:
    from gateway.auth.service import AuthService

app = typer.Typer(help="Accounts and API tokens 账户与令牌", no_args_is_help=True)


def _service(config: Path | None, database: str | None, data_dir: Path | None) -> AuthService:
    from gateway.auth.service import AuthService

    engine, audit = open_audit(config, database, data_dir)
    return AuthService(engine, audit)


def _password(prompt: bool) -> str:
    env = os.environ.get("LIANFANG_ADMIN_PASSWORD")
    if env and not prompt:
        return env
    return str(typer.prompt("密码 / password", hide_input=True, confirmation_prompt=True))


@app.command("create-admin")
def create_admin(
    username: str = typer.Argument("admin", help="User name"),
    config: Path | None = ConfigOpt,
    database: str | None = DatabaseOpt,
    data_dir: Path | None = DataDirOpt,
    prompt: bool = typer.Option(
        False, "--prompt", help="Ask even if LIANFANG_ADMIN_PASSWORD is set"
    ),
) -> None:
    """Create an administrator (password prompted, or from LIANFANG_ADMIN_PASSWORD)."""
    from gateway.auth.roles import AccountRole
    from gateway.auth.service import CLI, AuthError

    service = _service(config, database, data_dir)
    try:
        user = service.create_user(username, _password(prompt), AccountRole.ADMINISTRATOR, CLI)
    except AuthError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"管理员已创建 / administrator created: {user['username']} ({user['id']})")


@app.command("reset-password")
def reset_password(
    username: str = typer.Argument(..., help="User name"),
    generate: bool = typer.Option(
        False, "--generate", help="Make a random password and print it (else: prompted)"
    ),
    config: Path | None = ConfigOpt,
    database: str | None = DatabaseOpt,
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Set a new password for an account (also unlocks it and ends its open sessions).

    For the demo: ``lianfang users reset-password admin --data-dir data/demo --generate``."""
    import secrets

    from gateway.auth.service import CLI, AuthError

    service = _service(config, database, data_dir)
    user = next((u for u in service.list_users() if u["username"] == username.lower()), None)
    if user is None:
        typer.echo(f"没有此用户 / no user {username!r}", err=True)
        raise typer.Exit(1)
    password = secrets.token_urlsafe(12) if generate else _password(True)
    try:
        service.update_user(user["id"], CLI, password=password)
    except AuthError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"密码已重置 / password reset: {user['username']}")
    if generate:
        typer.echo(password)


@app.command("create")
def create(
    username: str,
    role: str = typer.Option(..., help="Role, e.g. grid_worker, police_desk, resident"),
    person: str | None = typer.Option(None, help="Grid person id (their scopes apply)"),
    household: str | None = typer.Option(None, help="Household id (residents)"),
    site: list[str] = typer.Option([], help="Compound (repeatable)"),
    cell: list[str] = typer.Option([], help="Grid cell (repeatable)"),
    beat: list[str] = typer.Option([], help="Police beat (repeatable)"),
    community: list[str] = typer.Option([], help="Community (repeatable)"),
    street: list[str] = typer.Option([], help="Street office (repeatable)"),
    no_password: bool = typer.Option(False, help="Token-only account (integrations)"),
    config: Path | None = ConfigOpt,
    database: str | None = DatabaseOpt,
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Create an account with a role and its scope."""
    from gateway.auth.roles import AccountRole
    from gateway.auth.service import CLI, AuthError

    try:
        account_role = AccountRole(role)
    except ValueError:
        typer.echo(f"unknown role {role!r}: {', '.join(r.value for r in AccountRole)}", err=True)
        raise typer.Exit(2) from None
    service = _service(config, database, data_dir)
    scopes = {
        "sites": site, "cells": cell, "beats": beat, "communities": community, "streets": street
    }  # fmt: skip
    try:
        user = service.create_user(
            username,
            None if no_password else _password(True),
            account_role,
            CLI,
            person_id=person,
            household_id=household,
            scopes=scopes,
        )
    except AuthError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"created {user['username']} ({user['id']}) as {user['role']}")


@app.command("list")
def list_(
    config: Path | None = ConfigOpt,
    database: str | None = DatabaseOpt,
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Accounts with role, scope and state (never passwords)."""
    for u in _service(config, database, data_dir).list_users():
        state = "active" if u["active"] else "disabled"
        typer.echo(f"{u['id']}  {u['username']:<24} {u['role']:<24} {state}  {u['scopes']}")


@app.command("token")
def token(
    username: str,
    name: str = typer.Option(..., help="What the token is for"),
    permission: list[str] = typer.Option([], help="Limit to these permissions (repeatable)"),
    config: Path | None = ConfigOpt,
    database: str | None = DatabaseOpt,
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Create an API token for an account; printed once."""
    from gateway.auth.service import CLI, AuthError

    service = _service(config, database, data_dir)
    user = next((u for u in service.list_users() if u["username"] == username.lower()), None)
    if user is None:
        typer.echo(f"no user {username!r}", err=True)
        raise typer.Exit(1)
    try:
        secret, row = service.create_token(user["id"], name, CLI, permissions=permission or None)
    except AuthError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"token {row['id']} ({', '.join(row['permissions'])}):")
    typer.echo(secret)


@app.command("revoke-token")
def revoke_token(
    token_id: str,
    config: Path | None = ConfigOpt,
    database: str | None = DatabaseOpt,
    data_dir: Path | None = DataDirOpt,
) -> None:
    """Revoke an API token at once."""
    from gateway.auth.service import CLI

    if not _service(config, database, data_dir).revoke_token(token_id, CLI):
        typer.echo(f"no active token {token_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {token_id}")
