"""Hostile data in a real browser: a grid person's name that tries to end the page's JSON
script block leaves the page intact (the name is data, nothing of it runs or is inserted)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import ACCOUNTS, PHONE, shot

pytestmark = pytest.mark.slow

HOSTILE = "</script><img src=x onerror=alert(1)>"


@pytest.fixture(scope="module")
def admin(gateway: str) -> Iterator[httpx.Client]:
    account = ACCOUNTS["p-admin"]
    with httpx.Client(base_url=gateway, timeout=10) as client:
        r = client.post(
            "/api/auth/login",
            json={"username": account["username"], "password": account["password"]},
        )
        r.raise_for_status()
        client.headers["Authorization"] = f"Bearer {r.json()['token']}"
        yield client


def test_hostile_name_leaves_the_page_json_intact(
    browser: Any, gateway: str, admin: httpx.Client
) -> None:
    person = {"id": "p-hostile", "name": HOSTILE, "roles": ["grid_worker"], "cells": ["shifan-01"]}
    r = admin.put("/api/grid/people/p-hostile", json=person)
    assert r.status_code == 200, r.text
    password = secrets.token_urlsafe(18)
    r = admin.post(
        "/api/users",
        json={"username": "e2e-hostile", "password": password, "role": "grid_worker",
              "person_id": "p-hostile"},
    )  # fmt: skip
    assert r.status_code == 201, r.text

    ctx = browser.new_context(viewport=PHONE, base_url=gateway, locale="zh-CN")
    page = ctx.new_page()
    page.route("**/favicon.ico", lambda route: route.fulfill(status=204))  # the browser's own
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    failed: list[str] = []
    page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))
    try:
        page.goto("/login")
        page.fill("#login input[name=username]", "e2e-hostile")
        page.fill("#login input[name=password]", password)
        page.click("#login button[type=submit]")
        page.wait_for_url("**/console/grid")
        page.wait_for_load_state("networkidle")
        # the JSON block parses and holds the name as it is
        me = page.evaluate("() => JSON.parse(document.getElementById('me').textContent)")
        assert me["name"] == HOSTILE and me["id"] == "p-hostile"
        # one script block, nothing inserted after it, no element made of the name
        assert page.locator("img[src='x']").count() == 0
        assert page.evaluate("() => document.querySelectorAll('head > script').length") == 2
        html = page.content()
        assert HOSTILE not in html
        # the page's own script ran (the grid page lists the cell's incidents) and the name is
        # shown as text in the header
        page.wait_for_selector("[data-testid=user]")
        assert page.locator("[data-testid=user]").inner_text() == HOSTILE
        shot(page, "hostile-name")
        assert not dialogs
        assert not failed, failed
        assert not errors, errors  # not even a blocked inline handler: there is none
    finally:
        ctx.close()
