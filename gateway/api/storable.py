"""Text the database cannot store is refused at the edge, on every route.

PostgreSQL refuses a NUL character in text (and the driver cannot encode a lone UTF-16
surrogate, which a JSON ``"\\ud800"`` escape decodes to). Left to the database, such a
value was a 500 — on the unauthenticated login too — and a driver error that quoted the
statement's parameters. ``storable_input`` runs after authentication on every API route
(before any handler) and on the login and console routes: a NUL or lone surrogate in the
path, a query parameter, or any key or string of a JSON or form body answers **422** in
FastAPI's error shape, naming where (``loc``). WebSockets close with 1008.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from fastapi import WebSocketException, status
from fastapi.exceptions import RequestValidationError
from starlette.requests import HTTPConnection, Request

from gateway.ids import UNSTORABLE

MESSAGE = "NUL and lone surrogate characters cannot be stored / 不能包含空字符或孤立代理字符"
MAX_ERRORS = 20

Loc = tuple[str | int, ...]


def unstorable(value: str) -> bool:
    return UNSTORABLE.search(value) is not None


def _walk(value: Any, loc: Loc, out: list[Loc]) -> None:
    if len(out) >= MAX_ERRORS:
        return
    if isinstance(value, str):
        if unstorable(value):
            out.append(loc)
    elif isinstance(value, dict):
        for k, v in value.items():
            if unstorable(str(k)):
                out.append((*loc, "<key>"))
            _walk(v, (*loc, str(k)), out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _walk(v, (*loc, i), out)


async def _body_errors(request: Request) -> list[Loc]:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    out: list[Loc] = []
    if kind == "application/json" or kind.endswith("+json"):
        try:
            data = json.loads(await request.body() or b"null")
        except ValueError:
            return []  # not JSON: the route's own validation says so
        _walk(data, ("body",), out)
    elif kind == "application/x-www-form-urlencoded":
        text = (await request.body()).decode("utf-8", "replace")
        for key, value in parse_qsl(text, keep_blank_values=True):
            if unstorable(key) or unstorable(value):
                out.append(("body", key.replace("\x00", "\\x00")))
    return out


async def storable_input(conn: HTTPConnection) -> None:
    """Dependency: refuse text the database cannot store (422; WebSocket: close 1008)."""
    errors: list[Loc] = []
    if unstorable(conn.url.path):
        errors.append(("path",))
    for key, value in conn.query_params.multi_items():
        if unstorable(key) or unstorable(value):
            errors.append(("query", key.replace("\x00", "\\x00")))
    if not errors and isinstance(conn, Request) and conn.method in ("POST", "PUT", "PATCH"):
        errors = await _body_errors(conn)
    if not errors:
        return
    if conn.scope["type"] == "websocket":
        raise WebSocketException(status.WS_1008_POLICY_VIOLATION, "unstorable text")
    raise RequestValidationError(
        [{"type": "value_error", "loc": loc, "msg": MESSAGE, "input": None} for loc in errors]
    )
