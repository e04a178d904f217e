"""The ISAPI push listener against a real writer and evidence store: access-controller and
ANPR pushes (multipart with pictures, bare JSON, XML) become events with evidence through the
shipped profiles; digest, pinned addresses, unknown devices, hostile XML and oversize bodies
get a clear 4xx and a quarantine record; a refused panic is reported, never dropped."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gateway.receivers.httppush import unregistered
from gateway.receivers.isapi import routes as isapi_routes
from gateway.receivers.isapi.config import IsapiConfig
from gateway.receivers.isapi.service import IsapiService
from tests.receivers.push_harness import (
    ACS,
    ANPR,
    CLIENT,
    PASSWORD,
    PASSWORD_ENV,
    PINNED,
    Stack,
    client,
    jpeg,
    multipart,
    stack,
)


@pytest.fixture(autouse=True)
def _password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)


class Listener:
    def __init__(self, stack: Stack, app: FastAPI) -> None:
        self.stack = stack
        self.app = app

    def device(self, device_id: str, password: str = PASSWORD, **kw: Any) -> httpx.AsyncClient:
        return client(self.app, auth=httpx.DigestAuth(device_id, password), **kw)


@pytest.fixture
async def listener(tmp_path: Path) -> AsyncIterator[Listener]:
    with stack(tmp_path) as s:
        config = IsapiConfig(enabled=True, max_body_mb=0.5, unauthenticated={PINNED: CLIENT[0]})
        service = IsapiService(config, s.registry, s.intake("isapi"))
        app = FastAPI()
        app.include_router(isapi_routes.router)
        app.state.isapi = service
        yield Listener(s, app)


def acs_event(serial: int, major: int = 5, minor: int = 1, card: str = "3506421987") -> bytes:
    return json.dumps({
        "ipAddress": "10.0.3.21", "dateTime": "2026-11-22T21:03:00+08:00", "activePostCount": 1,
        "eventType": "AccessControllerEvent", "eventState": "active",
        "AccessControllerEvent": {"majorEventType": major, "subEventType": minor,
                                  "cardNo": card, "doorNo": 1, "serialNo": serial},
    }).encode()  # fmt: skip


ANPR_XML = """<?xml version="1.0" encoding="UTF-8"?>
<EventNotificationAlert version="2.0" xmlns="http://www.isapi.org/ver20/XMLSchema">
<ipAddress>10.0.5.21</ipAddress><channelID>1</channelID>
<dateTime>2026-11-22T21:03:00+08:00</dateTime><activePostCount>1</activePostCount>
<eventType>ANPR</eventType><eventState>active</eventState><eventDescription>ANPR</eventDescription>
<ANPR><licensePlate>浙J12345</licensePlate><line>1</line><direction>forward</direction>
<confidenceLevel>97</confidenceLevel><plateColor>yellow</plateColor>
<pictureInfoList><pictureInfo><fileName>licensePlatePicture.jpg</fileName></pictureInfo>
<pictureInfo><fileName>detectionPicture.jpg</fileName></pictureInfo></pictureInfoList></ANPR>
<UUID>a0fe72d4-3652-464a-aebd-3f9190010236</UUID><picNum>2</picNum>
</EventNotificationAlert>""".encode()


async def test_access_controller_multipart_with_picture(listener: Listener) -> None:
    body, content_type = multipart(
        [
            ("event_log", "application/json", acs_event(7781)),
            ("Picture", "image/jpeg", jpeg(4000, 3)),
        ]
    )
    async with listener.device(ACS) as http:
        answer = await http.post(
            f"/isapi/events/{ACS}", content=body, headers={"Content-Type": content_type}
        )
    assert answer.status_code == 200, answer.text
    assert answer.json()["statusCode"] == 1
    (event,) = listener.stack.events()
    assert event["event_id"] == f"hikvision-acs:{ACS}:7781"
    assert (event["kind"], event["type"]) == ("access", "access_granted")
    assert event["attributes"]["card_masked"] == "******1987"
    assert "3506421987" not in event["raw"]
    (picture,) = listener.stack.store.for_ref(event["event_id"])
    assert picture.method == "push" and picture.camera_id == ACS
    assert listener.stack.store.read(picture.id) == jpeg(4000, 3)


async def test_anpr_xml_multipart(listener: Listener) -> None:
    body, content_type = multipart([
        ("anpr.xml", "text/xml", ANPR_XML),
        ("licensePlatePicture.jpg", "image/jpeg", jpeg(800, 4)),
        ("detectionPicture.jpg", "image/jpeg", jpeg(5000, 5)),
    ])  # fmt: skip
    async with listener.device(ANPR) as http:
        answer = await http.post(
            f"/isapi/events/{ANPR}", content=body, headers={"Content-Type": content_type}
        )
        again = await http.post(
            f"/isapi/events/{ANPR}", content=body, headers={"Content-Type": content_type}
        )
    assert answer.status_code == 200 and again.status_code == 200
    (event,) = listener.stack.events()  # the re-sent alert (same UUID) is stored once
    assert event["event_id"] == f"hikvision-anpr:{ANPR}:a0fe72d4-3652-464a-aebd-3f9190010236"
    attributes = event["attributes"]
    assert (attributes["plate"], attributes["plate_colour"], attributes["direction"]) == (
        "浙J12345",
        "yellow",
        "in",
    )
    names = [p.reason for p in listener.stack.store.for_ref(event["event_id"])]
    assert names == ["isapi licensePlatePicture.jpg", "isapi detectionPicture.jpg"]


async def test_bare_json_heartbeat_and_unmapped_event(listener: Listener) -> None:
    async with listener.device(ACS) as http:
        beat = await http.post(
            f"/isapi/events/{ACS}",
            json={"eventType": "heartBeat", "dateTime": "2026-11-22T21:03:00+08:00"},
        )
        other = await http.post(f"/isapi/events/{ACS}", json={"eventType": "somethingElse"})
    assert beat.status_code == 200 and other.status_code == 200
    assert [e["type"] for e in listener.stack.events()] == ["heartbeat"]
    assert [q["reason"] for q in listener.stack.quarantine()] == ["no_match"]


async def test_digest_challenge_then_wrong_password(listener: Listener) -> None:
    async with client(listener.app) as http:
        bare = await http.post(
            f"/isapi/events/{ACS}",
            content=acs_event(1),
            headers={"Content-Type": "application/json"},
        )
    assert bare.status_code == 401 and bare.headers["www-authenticate"].startswith("Digest ")
    async with listener.device(ACS, "wrong") as http:
        wrong = await http.post(
            f"/isapi/events/{ACS}",
            content=acs_event(2),
            headers={"Content-Type": "application/json"},
        )
    async with listener.device(ANPR) as http:  # good password, but another device's path
        borrowed = await http.post(
            f"/isapi/events/{ACS}",
            content=acs_event(3),
            headers={"Content-Type": "application/json"},
        )
    assert wrong.status_code == 401 and borrowed.status_code == 401
    assert listener.stack.events() == []
    assert [q["reason"] for q in listener.stack.quarantine()] == [
        "unauthenticated",
        "unauthenticated",
    ]


async def test_pinned_address_without_credentials(listener: Listener) -> None:
    body, content_type = multipart([("anpr.xml", "application/xml", ANPR_XML)])
    async with client(listener.app) as http:
        ok = await http.post(
            f"/isapi/events/{PINNED}", content=body, headers={"Content-Type": content_type}
        )
    async with client(listener.app, address=("10.0.0.77", 999)) as http:
        elsewhere = await http.post(
            f"/isapi/events/{PINNED}", content=body, headers={"Content-Type": content_type}
        )
    assert ok.status_code == 200 and elsewhere.status_code == 403
    assert [e["device_id"] for e in listener.stack.events()] == [PINNED]
    assert [q["reason"] for q in listener.stack.quarantine()] == ["unauthenticated"]


async def test_unknown_device_panic_is_refused_but_reported(listener: Listener) -> None:
    before = unregistered.REPORTED["isapi"]
    panic = acs_event(99, major=1, minor=1034)  # MINOR_STRESS_ALARM 胁迫报警
    async with client(listener.app) as http:
        answer = await http.post(
            "/isapi/events/stranger-door",
            content=panic,
            headers={"Content-Type": "application/json"},
        )
        calm = await http.post(
            "/isapi/events/stranger-door",
            content=acs_event(100),
            headers={"Content-Type": "application/json"},
        )
    assert answer.status_code == 403 and calm.status_code == 403
    assert unregistered.REPORTED["isapi"] == before + 1  # the panic only
    records = listener.stack.quarantine()
    assert [(q["reason"], q["device_id"]) for q in records] == [
        ("unknown_device", "stranger-door")
    ] * 2
    assert records[0]["detail"].startswith("PANIC-LIKE ALARM refused")
    assert b"AccessControllerEvent" in records[0]["raw"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><EventNotificationAlert>&a;</EventNotificationAlert>',
            "forbidden_xml",
        ),
        (
            b'<!DOCTYPE x SYSTEM "http://203.0.113.1/x.dtd"><EventNotificationAlert/>',
            "forbidden_xml",
        ),
        (b"<EventNotificationAlert><eventType>ANPR</eventType>", "malformed_xml"),
        (b"<a>" * 100 + b"</a>" * 100, "too_deep"),
    ],
)
async def test_hostile_and_broken_xml(listener: Listener, body: bytes, reason: str) -> None:
    async with listener.device(ANPR) as http:
        answer = await http.post(
            f"/isapi/events/{ANPR}", content=body, headers={"Content-Type": "application/xml"}
        )
        after = await http.post(f"/isapi/events/{ANPR}", json={"eventType": "videoloss", "eventState": "inactive",
                                                             "dateTime": "2026-11-22T21:05:00+08:00"})  # fmt: skip
    assert answer.status_code == 400 and answer.json()["statusCode"] == 6
    assert after.status_code == 200  # the listener goes on
    assert [q["reason"] for q in listener.stack.quarantine()] == [reason]


async def test_malformed_multipart_duplicate_keys_oversize(listener: Listener) -> None:
    async with listener.device(ACS) as http:
        no_boundary = await http.post(
            f"/isapi/events/{ACS}", content=b"x", headers={"Content-Type": "multipart/form-data"}
        )
        pictures_only, content_type = multipart([("Picture", "image/jpeg", jpeg(100))])
        no_event = await http.post(
            f"/isapi/events/{ACS}", content=pictures_only, headers={"Content-Type": content_type}
        )
        twice = await http.post(f"/isapi/events/{ACS}", content=b'{"eventType": "heartBeat", "eventType": "x"}',
                                headers={"Content-Type": "application/json"})  # fmt: skip
        big = await http.post(f"/isapi/events/{ACS}", content=b"{" + b" " * 600_000 + b"}",
                              headers={"Content-Type": "application/json"})  # fmt: skip
    assert [r.status_code for r in (no_boundary, no_event, twice, big)] == [400, 400, 400, 413]
    reasons = [q["reason"] for q in listener.stack.quarantine()]
    assert reasons == ["malformed_body", "malformed_body", "duplicate_key", "oversize"]


async def test_oversize_picture_is_not_kept_but_event_is(
    listener: Listener, tmp_path: Path
) -> None:
    with stack(tmp_path / "small") as s:
        config = IsapiConfig(enabled=True, max_image_kb=16)
        app = FastAPI()
        app.include_router(isapi_routes.router)
        app.state.isapi = IsapiService(config, s.registry, s.intake("isapi"))
        body, content_type = multipart(
            [
                ("event_log", "application/json", acs_event(5)),
                ("Picture", "image/jpeg", jpeg(40_000)),
            ]
        )
        async with client(app, auth=httpx.DigestAuth(ACS, PASSWORD)) as http:
            answer = await http.post(
                f"/isapi/events/{ACS}", content=body, headers={"Content-Type": content_type}
            )
        assert answer.status_code == 200
        (event,) = s.events()
        assert s.store.for_ref(event["event_id"]) == []
        assert "snapshot" not in event["attributes"].get("extra", {})
