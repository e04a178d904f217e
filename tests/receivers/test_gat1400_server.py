"""The GA/T 1400 server against a real writer and evidence store: registration with digest,
keepalive, record lists stored as events (pictures as evidence) before the answer, and every
refusal answered in the standard's form and quarantined."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.receivers.gat1400 import routes as gat1400_routes
from gateway.receivers.gat1400.config import Gat1400Config
from gateway.receivers.gat1400.service import Gat1400Service
from tests.receivers.push_harness import (
    FACE_CAMERA,
    OTHER_CAMERA,
    PASSWORD,
    PASSWORD_ENV,
    PLATE_CAMERA,
    Stack,
    b64,
    client,
    jpeg,
    stack,
)

VIID = "application/VIID+JSON"
VEHICLE_ID = "310108000011900000020220261122210300000010200001"


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


class Viid:
    def __init__(self, stack: Stack, service: Gat1400Service, app: FastAPI) -> None:
        self.stack = stack
        self.service = service
        self.app = app

    def device(
        self, device_id: str = PLATE_CAMERA, password: str = PASSWORD, **kw: Any
    ) -> httpx.AsyncClient:
        return client(self.app, auth=httpx.DigestAuth(device_id, password), **kw)

    async def register(
        self, http: httpx.AsyncClient, device_id: str = PLATE_CAMERA
    ) -> httpx.Response:
        return await http.post(
            "/VIID/System/Register",
            json={"RegisterObject": {"DeviceID": device_id}},
            headers={"Content-Type": VIID},
        )


@pytest.fixture
async def viid(tmp_path: Path) -> AsyncIterator[Viid]:
    with stack(tmp_path) as s:
        config = Gat1400Config(enabled=True, max_body_mb=1, platforms=[FACE_CAMERA])
        service = Gat1400Service(config, s.registry, s.intake("gat1400"), timezone="Asia/Shanghai")
        app = FastAPI()
        app.include_router(gat1400_routes.router)
        app.state.gat1400 = service
        yield Viid(s, service, app)


def vehicle(
    record_id: str = VEHICLE_ID, plate: str = "沪A12345", device: str = PLATE_CAMERA, **extra: Any
) -> dict[str, Any]:
    return {
        "MotorVehicleID": record_id, "InfoKind": 1, "DeviceID": device,
        "HasPlate": "1", "PlateColor": "5", "PlateNo": plate, "PassTime": "20261122210300",
        "PlateReliability": "96",
        "SubImageList": {"SubImageInfoObject": [
            {"ImageID": record_id[:41], "Type": "01", "FileFormat": "Jpeg",
             "ShotTime": "20261122210300", "Data": b64(jpeg(3000, 1))},
            {"ImageID": record_id[:41], "Type": "02", "FileFormat": "Jpeg",
             "ShotTime": "20261122210300", "Data": b64(jpeg(500, 2))},
        ]},
        **extra,
    }  # fmt: skip


def vehicles(*records: dict[str, Any]) -> dict[str, Any]:
    return {"MotorVehicleListObject": {"MotorVehicleObject": list(records)}}


def records(stack: Stack) -> list[dict[str, Any]]:
    """Stored events of records (not the online/heartbeat/offline of registration)."""
    return [e for e in stack.events() if e["type"] in ("plate_read", "person_captured")]


def status(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    return body.get("ResponseStatusObject") or body


async def test_register_keepalive_post_store_then_answer(viid: Viid) -> None:
    async with viid.device() as http:
        registered = await viid.register(http)
        assert registered.status_code == 200, registered.text
        assert registered.headers["content-type"].startswith(VIID)
        assert status(registered)["StatusCode"] == "0"
        assert status(registered)["Id"] == PLATE_CAMERA
        ident = {"User-Identify": PLATE_CAMERA, "Content-Type": VIID}
        alive = await http.post(
            "/VIID/System/Keepalive", json={"KeepaliveObject": {"DeviceID": PLATE_CAMERA}},
            headers=ident,
        )  # fmt: skip
        assert alive.status_code == 200 and status(alive)["StatusCode"] == "0"
        posted = await http.post("/VIID/MotorVehicles", json=vehicles(vehicle()), headers=ident)
    assert posted.status_code == 200, posted.text
    statuses = posted.json()["ResponseStatusListObject"]["ResponseStatusObject"]
    assert [(s["StatusCode"], s["Id"]) for s in statuses] == [("0", VEHICLE_ID)]
    # Stored before the answer: no flush needed to see it.
    assert [e["type"] for e in viid.stack.events() if e["type"] != "plate_read"] == [
        "online",
        "heartbeat",
    ]
    (event,) = records(viid.stack)
    assert event["event_id"] == f"gat1400:{PLATE_CAMERA}:{VEHICLE_ID}"
    assert (event["kind"], event["type"]) == ("gate", "plate_read")
    assert event["attributes"]["plate"] == "沪A12345"
    assert event["attributes"]["plate_colour"] == "blue"
    assert "Data" not in event["raw"] and "SubImageList" not in event["raw"]
    pictures = viid.stack.store.for_ref(event["event_id"])
    assert [p.reason for p in pictures] == ["gat1400 type 01", "gat1400 type 02"]
    assert {p.camera_id for p in pictures} == {PLATE_CAMERA}
    assert event["attributes"]["extra"]["snapshot"] == pictures[0].id
    stored = viid.stack.store.read(pictures[0].id)
    assert stored == jpeg(3000, 1)


async def test_evidence_files_are_owner_only(viid: Viid) -> None:
    async with viid.device() as http:
        await viid.register(http)
        await http.post("/VIID/MotorVehicles", json=vehicles(vehicle()),
                        headers={"User-Identify": PLATE_CAMERA})  # fmt: skip
    (picture, _) = viid.stack.store.for_ref(f"gat1400:{PLATE_CAMERA}:{VEHICLE_ID}")
    files = list((viid.stack.store.root).glob("*/*.jpg"))
    assert files and all(f.stat().st_mode & 0o077 == 0 for f in files), [
        oct(f.stat().st_mode) for f in files
    ]
    assert picture.size == len(jpeg(3000, 1))


async def test_post_without_registration_is_401_and_quarantined(viid: Viid) -> None:
    async with client(viid.app) as http:
        posted = await http.post("/VIID/MotorVehicles", json=vehicles(vehicle()),
                                 headers={"User-Identify": PLATE_CAMERA})  # fmt: skip
    assert posted.status_code == 401
    assert posted.headers["www-authenticate"].startswith("Digest ")
    assert status(posted)["StatusCode"] == "4"
    assert viid.stack.events() == []
    (q,) = viid.stack.quarantine()
    assert q["reason"] == "unauthenticated" and q["device_id"] == PLATE_CAMERA
    assert q["topic"] == "gat1400:POST /VIID/MotorVehicles"


async def test_registration_is_bound_to_its_address(viid: Viid) -> None:
    async with viid.device() as http:
        assert (await viid.register(http)).status_code == 200
    async with client(viid.app, address=("10.0.0.99", 1234)) as other:
        posted = await other.post("/VIID/MotorVehicles", json=vehicles(vehicle()),
                                  headers={"User-Identify": PLATE_CAMERA})  # fmt: skip
    assert posted.status_code == 401
    assert records(viid.stack) == []


async def test_register_challenge_wrong_password_unknown_device(viid: Viid) -> None:
    async with client(viid.app) as http:
        bare = await http.post("/VIID/System/Register",
                               json={"RegisterObject": {"DeviceID": PLATE_CAMERA}})  # fmt: skip
    assert bare.status_code == 401 and 'qop="auth"' in bare.headers["www-authenticate"]
    assert viid.stack.quarantine() == []  # the challenge is the protocol, not a refusal
    async with viid.device(password="wrong") as http:
        wrong = await viid.register(http)
    assert wrong.status_code == 401
    async with viid.device(OTHER_CAMERA) as http:  # registered, but no password_env
        unknown = await viid.register(http, OTHER_CAMERA)
    assert unknown.status_code == 403
    async with viid.device("31010800001190009999") as http:  # not in the registry
        stranger = await viid.register(http, "31010800001190009999")
    assert stranger.status_code == 403
    reasons = sorted((q["reason"], q["device_id"]) for q in viid.stack.quarantine())
    assert reasons == [
        ("unauthenticated", PLATE_CAMERA),
        ("unknown_device", OTHER_CAMERA),
        ("unknown_device", "31010800001190009999"),
    ]
    assert len(viid.service.registrations) == 0


async def test_register_naming_another_device_is_refused(viid: Viid) -> None:
    async with viid.device() as http:
        answer = await viid.register(http, FACE_CAMERA)
    assert answer.status_code == 403
    assert len(viid.service.registrations) == 0


async def test_malformed_duplicate_keys_and_oversize_bodies(viid: Viid) -> None:
    async with viid.device() as http:
        await viid.register(http)
        ident = {"User-Identify": PLATE_CAMERA, "Content-Type": VIID}
        broken = await http.post(
            "/VIID/MotorVehicles", content=b'{"MotorVehicleListObject": {', headers=ident
        )
        twice = await http.post(
            "/VIID/MotorVehicles",
            content=b'{"MotorVehicleListObject": {"MotorVehicleObject": []}, "MotorVehicleListObject": {}}',
            headers=ident,
        )
        shape = await http.post("/VIID/MotorVehicles", json={"FaceListObject": {}}, headers=ident)
        big = await http.post(
            "/VIID/MotorVehicles", content=b"{" + b" " * (1024 * 1024 + 10) + b"}", headers=ident
        )
        alive = await http.post(
            "/VIID/System/Keepalive",
            json={"KeepaliveObject": {"DeviceID": PLATE_CAMERA}},
            headers=ident,
        )
    assert (broken.status_code, status(broken)["StatusCode"]) == (400, "7")
    assert (twice.status_code, status(twice)["StatusCode"]) == (400, "7")
    assert (shape.status_code, status(shape)["StatusCode"]) == (400, "8")
    assert big.status_code == 413
    assert alive.status_code == 200  # the server goes on
    reasons = sorted(q["reason"] for q in viid.stack.quarantine())
    assert reasons == ["duplicate_key", "malformed_body", "malformed_json", "oversize"]


async def test_each_record_answered_duplicates_stored_once(viid: Viid) -> None:
    second = "310108000011900000020220261122210400000010200002"
    bad_time = vehicle("310108000011900000020220261122210500000010200003", PassTime="yesterday")
    async with viid.device() as http:
        await viid.register(http)
        ident = {"User-Identify": PLATE_CAMERA}
        first = await http.post(
            "/VIID/MotorVehicles",
            json=vehicles(vehicle(), vehicle(second, "沪B54321"), bad_time),
            headers=ident,
        )
        again = await http.post("/VIID/MotorVehicles", json=vehicles(vehicle()), headers=ident)
    codes = [
        s["StatusCode"] for s in first.json()["ResponseStatusListObject"]["ResponseStatusObject"]
    ]
    assert codes == ["0", "0", "8"]
    assert [
        s["StatusCode"] for s in again.json()["ResponseStatusListObject"]["ResponseStatusObject"]
    ] == ["0"]
    assert sorted(e["attributes"]["plate"] for e in records(viid.stack)) == ["沪A12345", "沪B54321"]
    assert len(viid.stack.store.for_ref(f"gat1400:{PLATE_CAMERA}:{VEHICLE_ID}")) == 2  # not again
    assert [q["reason"] for q in viid.stack.quarantine()] == ["invalid_event"]


async def test_records_of_other_devices_only_from_platforms(viid: Viid) -> None:
    face = {"FaceID": "310108000011900000030220261122210500000010600001", "DeviceID": FACE_CAMERA,
            "FaceAppearTime": "20261122210500", "IDNumber": "330102199001011234",
            "Name": "张三"}  # fmt: skip
    async with viid.device() as http:  # a camera posting another camera's record: refused
        await viid.register(http)
        refused = await http.post("/VIID/Faces", json={"FaceListObject": {"FaceObject": [face]}},
                                  headers={"User-Identify": PLATE_CAMERA})  # fmt: skip
    assert (
        refused.json()["ResponseStatusListObject"]["ResponseStatusObject"][0]["StatusCode"] == "4"
    )
    async with viid.device(FACE_CAMERA) as http:  # a platform may (gat1400.platforms)
        await viid.register(http, FACE_CAMERA)
        taken = await http.post(
            "/VIID/MotorVehicles", json=vehicles(vehicle()), headers={"User-Identify": FACE_CAMERA}
        )
        own = await http.post("/VIID/Faces", json={"FaceListObject": {"FaceObject": [face]}},
                              headers={"User-Identify": FACE_CAMERA})  # fmt: skip
    assert taken.json()["ResponseStatusListObject"]["ResponseStatusObject"][0]["StatusCode"] == "0"
    assert own.json()["ResponseStatusListObject"]["ResponseStatusObject"][0]["StatusCode"] == "0"
    by_type = {e["type"]: e for e in records(viid.stack)}
    person = by_type["person_captured"]
    assert person["attributes"]["person_ref"].startswith("person:")
    assert "330102199001011234" not in person["raw"] and "张三" not in person["raw"]
    assert by_type["plate_read"]["device_id"] == PLATE_CAMERA


async def test_unregister_and_time(viid: Viid) -> None:
    async with viid.device() as http:
        await viid.register(http)
        ident = {"User-Identify": PLATE_CAMERA}
        clock = await http.get("/VIID/System/Time")
        gone = await http.post("/VIID/System/UnRegister",
                               json={"UnRegisterObject": {"DeviceID": PLATE_CAMERA}}, headers=ident)  # fmt: skip
        unknown_path = await http.post("/VIID/Subscribes", json={})
    async with client(viid.app) as plain:  # the standard's way: User-Identify only
        after = await plain.post("/VIID/MotorVehicles", json=vehicles(vehicle()), headers=ident)
    time_object = clock.json()["SystemTimeObject"]
    assert len(time_object["LocalTime"]) == 14 and time_object["TimeZone"] == "Asia/Shanghai"
    assert gone.status_code == 200 and status(gone)["StatusCode"] == "0"
    assert [e["type"] for e in viid.stack.events()] == ["online", "offline"]
    assert after.status_code == 401
    assert unknown_path.status_code == 404 and status(unknown_path)["StatusCode"] == "4"


async def test_keepalive_without_registration(viid: Viid) -> None:
    async with client(viid.app) as http:
        answer = await http.post("/VIID/System/Keepalive",
                                 content=json.dumps({"KeepaliveObject": {"DeviceID": PLATE_CAMERA}}))  # fmt: skip
    assert answer.status_code == 401 and status(answer)["StatusCode"] == "4"


async def test_no_sender_without_user_identify_or_credentials(viid: Viid) -> None:
    """Registered from this address, a post naming nobody is still refused: another device
    (or anyone) behind the same address must not pass for the registered one."""
    async with viid.device() as http:
        assert (await viid.register(http)).status_code == 200
    async with client(viid.app) as anonymous:
        posted = await anonymous.post("/VIID/MotorVehicles", json=vehicles(vehicle()))
    assert posted.status_code == 401
    assert records(viid.stack) == []


async def test_digest_on_the_post_itself_is_accepted(viid: Viid) -> None:
    async with viid.device() as http:  # httpx answers the 401 challenge of the post itself
        posted = await http.post("/VIID/MotorVehicles", json=vehicles(vehicle()))
    assert posted.status_code == 200
    assert [e["attributes"]["plate"] for e in records(viid.stack)] == ["沪A12345"]
    async with viid.device(password="wrong") as http:
        refused = await http.post(
            "/VIID/MotorVehicles",
            json=vehicles(vehicle("310108000011900000020220261122210300000010200077")),
        )
    assert refused.status_code == 401
