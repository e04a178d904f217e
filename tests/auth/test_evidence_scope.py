"""Evidence snapshots only of cameras in the caller's scope (camera → device → site);
others answer 404 like a missing id."""

from __future__ import annotations

from gateway.auth.roles import AccountRole
from gateway.auth.service import CLI
from gateway.evidence.snapshot import JPEG_MAGIC, Snapshot
from tests.auth.conftest import T, World

JPEG = JPEG_MAGIC + b"\0" * 32


async def test_snapshots_only_of_cameras_in_scope(world: World) -> None:
    assert world.evidence is not None
    own = world.evidence.save(Snapshot("d-own", T, JPEG, "http", "test"), ref="e-1")
    other = world.evidence.save(Snapshot("d-other", T, JPEG, "http", "test"), ref="e-1")
    user = world.auth.create_user(
        "cmd-site", None, AccountRole.COMMAND_OPERATOR, CLI, scopes={"sites": ["demo-compound"]}
    )
    token, _ = world.auth.create_token(user["id"], "t", CLI)
    scoped = {"Authorization": f"Bearer {token}"}

    listing = await world.client.get("/api/evidence?ref=e-1", headers=scoped)
    assert [s["id"] for s in listing.json()] == [own.id]
    for path in ("", "/image"):
        ok = await world.client.get(f"/api/evidence/{own.id}{path}", headers=scoped)
        assert ok.status_code == 200, ok.text
        hidden = await world.client.get(f"/api/evidence/{other.id}{path}", headers=scoped)
        assert hidden.status_code == 404, hidden.text

    # the whole territory sees both
    everything = await world.client.get("/api/evidence?ref=e-1", headers=world.as_("cmd"))
    assert {s["id"] for s in everything.json()} == {own.id, other.id}
    full = await world.client.get(f"/api/evidence/{other.id}/image", headers=world.as_("cmd"))
    assert full.status_code == 200
