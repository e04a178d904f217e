"""Failed sign-ins slow the guesser down and never lock the owner out: per name × address,
per address and per name, growing delays, the same answers for unknown and existing names,
an alert to the administrators, sessions untouched, an administrator's unlock, and one
audit row per name, address and interval."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gateway.audit.tables import audit_log
from gateway.auth.guards import live_push
from gateway.auth.principal import EVERYTHING, Principal
from gateway.auth.roles import AccountRole
from gateway.auth.runtime import AuthHousekeeping, push_security_alert
from gateway.auth.service import CLI
from gateway.auth.throttle import Alert, LoginThrottle, ThrottleSettings
from gateway.notify.console import NotificationHub
from tests.auth.conftest import World
from tests.incidents.helpers import T0, FakeClock
from tests.support.auth import cheap_argon2

PASSWORD = "correct horse battery"
ATTACKER, OWNER = "127.0.0.2", "127.0.0.1"


@pytest.fixture(autouse=True)
def _cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    cheap_argon2(monkeypatch)


class Tick:
    """A monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


# -- the throttle alone ----------------------------------------------------------------------


def test_delays_grow_per_name_and_address_and_are_capped() -> None:
    tick = Tick()
    t = LoginThrottle(
        ThrottleSettings(free=3, max_delay_s=60, address_free=100, account_free=100), tick
    )
    waits = []
    for _ in range(12):
        t.failed("admin", "a")
        waits.append(t.wait("admin", "a"))
    assert waits == [0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
    assert t.wait("admin", "b") == 0  # the owner elsewhere
    assert t.wait("other", "a") == 0  # another name from there (below address_free)
    tick.t += 59.5
    assert t.wait("admin", "a") == pytest.approx(0.5)
    tick.t += 1
    assert t.wait("admin", "a") == 0
    t.succeeded("admin", "a")
    t.failed("admin", "a")
    assert t.wait("admin", "a") == 0  # a success starts it over


def test_address_key_stops_spraying_many_names() -> None:
    tick = Tick()
    t = LoginThrottle(ThrottleSettings(free=3, address_free=5), tick)
    for i in range(6):
        t.failed(f"user{i}", "a")
    assert t.wait("fresh-name", "a") == 2  # 6 failures, 5 free: 2 s
    assert t.wait("fresh-name", "b") == 0


def test_account_key_holds_only_addresses_that_failed_for_it() -> None:
    """A distributed guess (one try per address) meets the per-name key from each address's
    second try on; the owner, who has not failed, is never held."""
    tick = Tick()
    t = LoginThrottle(ThrottleSettings(free=3, account_free=10), tick)
    for i in range(12):
        t.failed("admin", f"10.0.0.{i}")
    assert t.wait("admin", "10.0.0.1") == 4  # 12 failures, 10 free: 4 s
    assert t.wait("admin", "10.9.9.9") == 0  # the owner
    t.failed("admin", "10.9.9.9")  # the owner mistypes once: now it meets the key too
    assert t.wait("admin", "10.9.9.9") == 8


def test_counts_are_forgotten_after_the_window_and_unlock_clears_them() -> None:
    tick = Tick()
    t = LoginThrottle(ThrottleSettings(free=1, window_s=100, max_delay_s=1000), tick)
    for _ in range(5):
        t.failed("admin", "a")
    assert t.wait("admin", "a") == 16
    tick.t += 101
    assert t.wait("admin", "a") == 0
    for _ in range(5):
        t.failed("admin", "a")
    assert t.unlock("admin") == 2  # the name × address key and the name's key
    assert t.wait("admin", "a") == 0


def test_alerts_once_per_name_and_per_address() -> None:
    t = LoginThrottle(ThrottleSettings(alert_after=3), Tick())
    alerts: list[Alert] = []
    for i in range(6):
        alerts += t.failed("admin", f"10.0.0.{i % 2}")
    assert [(a.kind, a.key, a.failures, a.addresses) for a in alerts] == [
        ("account", "admin", 3, 2),
        ("address", "10.0.0.0", 3, 1),
        ("address", "10.0.0.1", 3, 1),
    ]


# -- through the API -------------------------------------------------------------------------


@pytest.fixture
async def clients(world: World) -> AsyncIterator[dict[str, Any]]:
    """Clients at two addresses; the throttle's clock and the audit interval's by hand."""
    tick, clock = Tick(), FakeClock(T0)
    world.auth.signin.throttle.clock = tick
    world.auth.signin.clock = clock
    alerts: list[Alert] = []
    world.auth.signin.on_alert = alerts.append
    out: dict[str, Any] = {"tick": tick, "clock": clock, "alerts": alerts}
    for address in (ATTACKER, OWNER):
        transport = httpx.ASGITransport(app=world.app, client=(address, 40000))
        out[address] = httpx.AsyncClient(transport=transport, base_url="https://t")
    yield out
    for address in (ATTACKER, OWNER):
        await out[address].aclose()


async def _login(client: httpx.AsyncClient, name: str, password: str) -> httpx.Response:
    return await client.post("/api/auth/login", json={"username": name, "password": password})


def _rows(world: World, action: str) -> list[Any]:
    with world.rt.engine.connect() as conn:
        return list(conn.execute(select(audit_log).where(audit_log.c.action == action)))


async def test_guessing_admin_does_not_keep_the_admin_out(
    world: World, clients: dict[str, Any]
) -> None:
    admin = world.auth.create_user("boss", PASSWORD, AccountRole.ADMINISTRATOR, CLI)
    attacker, owner = clients[ATTACKER], clients[OWNER]
    session = (await _login(owner, "boss", PASSWORD)).json()["token"]  # opened before
    codes = [(await _login(attacker, "boss", f"guess-{i}")).status_code for i in range(20)]
    assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}, codes
    # the right password from the attacker's address waits too (it is not even checked)
    r = await _login(attacker, "boss", PASSWORD)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    # the owner signs in from another address, and the open session still works
    assert (await _login(owner, "boss", PASSWORD)).status_code == 200
    me = await owner.get("/api/auth/me", headers={"Authorization": f"Bearer {session}"})
    assert me.status_code == 200
    # an administrator clears the delays: the right password works from there at once
    token = (await _login(owner, "boss", PASSWORD)).json()["token"]
    r = await owner.post(
        f"/api/users/{admin['id']}/unlock", headers={"Authorization": f"Bearer {token}"}
    )
    assert r.status_code == 200 and r.json()["cleared"] >= 1, r.text
    assert (await _login(attacker, "boss", PASSWORD)).status_code == 200
    assert _rows(world, "user.unlock")


async def test_unknown_and_existing_names_get_the_same_answers(
    world: World, clients: dict[str, Any]
) -> None:
    world.auth.create_user("real", PASSWORD, AccountRole.POLICE_DESK, CLI)
    seen = {}
    for name in ("real", "ghost"):
        answers = []
        for i in range(9):
            r = await _login(clients[ATTACKER], name, f"wrong-{i}")
            answers.append((r.status_code, r.json(), r.headers.get("retry-after")))
        seen[name] = answers
        clients["tick"].t += 10_000  # past the window: the next name starts afresh
    assert seen["real"] == seen["ghost"]
    assert [a[0] for a in seen["real"]] == [401] * 5 + [429] * 4


async def test_brute_force_alerts_the_administrators(world: World, clients: dict[str, Any]) -> None:
    world.auth.config = world.auth.config.model_copy(update={"alert_after_failures": 6})
    world.auth.create_user("desk", PASSWORD, AccountRole.POLICE_DESK, CLI)
    for i in range(8):  # one try from each of 8 addresses: no delay stops a single try
        transport = httpx.ASGITransport(app=world.app, client=(f"10.1.0.{i}", 1))
        async with httpx.AsyncClient(transport=transport, base_url="https://t") as c:
            assert (await _login(c, "desk", "wrong")).status_code == 401
    alerts: list[Alert] = clients["alerts"]
    assert [(a.kind, a.key, a.failures, a.addresses) for a in alerts] == [("account", "desk", 6, 6)]
    rows = _rows(world, "auth.bruteforce")
    assert len(rows) == 1 and rows[0].target == "user:desk" and rows[0].after["failures"] == 6


async def test_failed_sign_ins_are_one_audit_row_per_name_address_and_interval(
    world: World, clients: dict[str, Any]
) -> None:
    user = world.auth.create_user("zhao", PASSWORD, AccountRole.GRID_WORKER, CLI)
    clock: FakeClock = clients["clock"]
    before = world.auth.audit.count()
    for i in range(12):  # 5 failures, then throttled tries
        await _login(clients[ATTACKER], "zhao", f"w{i}")
    await _login(clients[OWNER], "zhao", "typo")
    assert world.auth.audit.count() == before  # nothing written while the interval runs
    clock.advance(timedelta(minutes=11).total_seconds())
    await _login(clients[ATTACKER], "nobody", "x")  # any sign-in writes the finished rows
    rows = _rows(world, "auth.login_failed")
    got = sorted((r.source_ip, r.target, r.after["failures"], r.after["throttled"]) for r in rows)
    assert got == [(OWNER, f"user:{user['id']}", 1, 0), (ATTACKER, f"user:{user['id']}", 5, 7)]
    # the new interval's row waits for its end, or for the gateway to stop
    assert world.auth.flush_failed_logins(force=True) == 1
    assert [r.target for r in _rows(world, "auth.login_failed")][-1] == "user:nobody"
    assert world.auth.audit.verify().ok


async def test_the_alert_is_pushed_to_administrators_only() -> None:
    hub = NotificationHub()
    views = {
        role: hub.watch(live_push(Principal(role, role=role, scope=EVERYTHING)).admits)
        for role in ("administrator", "command_operator")
    }
    for stream in views.values():
        assert (await anext(stream))["type"] == "subscribed"
    push_security_alert(hub, Alert("account", "admin", 20, 3))
    hub.publish({"type": "update", "incident_id": None})  # an ordinary item after it
    admin_items = [await anext(views["administrator"]) for _ in range(2)]
    assert [i["type"] for i in admin_items] == ["security_alert", "update"]
    assert "admin" in admin_items[0]["text_en"] and admin_items[0]["failures"] == 20
    assert (await anext(views["command_operator"]))["type"] == "update"
    for stream in views.values():
        await stream.aclose()  # type: ignore[attr-defined]


async def test_housekeeping_writes_what_is_pending_when_the_server_stops(
    world: World, clients: dict[str, Any]
) -> None:
    await _login(clients[ATTACKER], "someone", "wrong")
    assert not _rows(world, "auth.login_failed")
    job = AuthHousekeeping(world.auth, every_s=3600)
    job.start()
    await job.stop()
    assert len(_rows(world, "auth.login_failed")) == 1


async def test_others_failing_at_the_owners_address_do_not_shut_the_owner_out(
    world: World, clients: dict[str, Any]
) -> None:
    """An office behind one address: someone hammers other names there (address key and
    login rate limit reached); the owner, who has signed in from there, still gets in."""
    world.auth.config = world.auth.config.model_copy(
        update={"login_rate": "12/minute", "address_failures": 5}
    )
    world.auth.create_user("li", PASSWORD, AccountRole.GRID_WORKER, CLI)
    office = clients[OWNER]
    assert (await _login(office, "li", PASSWORD)).status_code == 200
    codes = [(await _login(office, f"x{i}", "wrong")).status_code for i in range(14)]
    assert codes[:5] == [401] * 5 and set(codes[-3:]) == {429}, codes
    assert (await _login(office, "newcomer", "anything")).status_code == 429
    assert (await _login(office, "li", PASSWORD)).status_code == 200
    # but guessing the owner's name there meets its own name x address delays
    li = [(await _login(office, "li", f"guess{i}")).status_code for i in range(7)]
    assert li[:5] == [401] * 5 and li[5:] == [429, 429], li
