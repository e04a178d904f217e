"""The push receivers' parsers: strict JSON, safe XML, ISAPI bodies and GA/T 1400 list objects
give a value or a ``Refused`` with a reason — never another exception — whatever the bytes
(fuzzed with hypothesis), and digest authentication interoperates with httpx's client."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.ingest.reasons import Reason
from gateway.receivers.gat1400.protocol import KINDS
from gateway.receivers.gat1400.records import list_items, to_item
from gateway.receivers.httppush.digest import DigestAuthority, Verdict, parse_authorization
from gateway.receivers.httppush.errors import Refused
from gateway.receivers.httppush.safe_xml import parse_xml
from gateway.receivers.httppush.strict_json import parse_json
from gateway.receivers.isapi.parts import read_push
from tests.receivers.push_harness import b64, jpeg, multipart

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ZONE = ZoneInfo("Asia/Shanghai")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


# -- strict JSON ------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=300))
def test_json_any_bytes(raw: bytes) -> None:
    try:
        parse_json(raw)
    except Refused as refusal:
        assert refusal.status == 400


@FUZZ
@given(json_values)
def test_json_reads_what_json_writes(value: object) -> None:
    raw = json.dumps(value).encode()
    try:
        assert parse_json(raw, max_depth=64) == value
    except Refused as refusal:  # only what storage cannot hold
        assert refusal.reason is Reason.INVALID_TEXT


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"a": 1, "a": 2}', Reason.DUPLICATE_KEY),
        (b'{"x": {"b": 1, "b": 1}}', Reason.DUPLICATE_KEY),
        (b'{"a": NaN}', Reason.MALFORMED_JSON),
        (b'{"a": Infinity}', Reason.MALFORMED_JSON),
        (b"[" * 50 + b"]" * 50, Reason.TOO_DEEP),
        (b'{"a": "\\u0000"}', Reason.INVALID_TEXT),
        (b'{"a": "\\ud800"}', Reason.INVALID_TEXT),
        (b'{"a": "\xff"}', Reason.INVALID_UTF8),
        (b'{"a": ', Reason.MALFORMED_JSON),
    ],
)
def test_json_refusals(raw: bytes, reason: Reason) -> None:
    with pytest.raises(Refused) as info:
        parse_json(raw)
    assert info.value.reason is reason


# -- safe XML ---------------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=300))
def test_xml_any_bytes(raw: bytes) -> None:
    try:
        parse_xml(raw)
    except Refused as refusal:
        assert refusal.status == 400


@FUZZ
@given(
    st.lists(
        st.sampled_from(
            ["<a>", "</a>", "<b/>", "x", "<!DOCTYPE a>", "&amp;", "&e;", "<?xml version='1.0'?>"]
        ),
        max_size=30,
    )
)
def test_xml_any_tag_soup(pieces: list[str]) -> None:
    try:
        parse_xml("".join(pieces).encode())
    except Refused as refusal:
        assert refusal.reason in (Reason.MALFORMED_XML, Reason.FORBIDDEN_XML, Reason.TOO_DEEP)


def test_xml_billion_laughs_and_external_entities_refused() -> None:
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "ha"><!ENTITY b "&a;&a;&a;&a;">]><l>&b;</l>'
    )
    external = (
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY x SYSTEM "file:///etc/passwd">]><l>&x;</l>'
    )
    for raw in (laughs, external):
        with pytest.raises(Refused) as info:
            parse_xml(raw)
        assert info.value.reason is Reason.FORBIDDEN_XML


def test_xml_to_dictionary() -> None:
    raw = b'<R xmlns="urn:x" version="2"><a> 1 </a><l><i>1</i></l><l><i>2</i></l><e/></R>'
    assert parse_xml(raw) == {"R": {"a": "1", "l": [{"i": "1"}, {"i": "2"}], "e": ""}}
    with pytest.raises(Refused) as info:
        parse_xml(b"<r>" + b"<x/>" * 50 + b"</r>", max_elements=20)
    assert info.value.reason is Reason.OVERSIZE


# -- ISAPI bodies -----------------------------------------------------------------------


@FUZZ
@given(
    st.binary(max_size=400),
    st.sampled_from(
        [
            "multipart/form-data; boundary=B",
            "application/json",
            "application/xml",
            "",
            "multipart/form-data",
        ]
    ),
)
def test_isapi_any_body(raw: bytes, content_type: str) -> None:
    try:
        push = read_push(raw, content_type, max_parts=4, max_depth=16)
    except Refused as refusal:
        assert refusal.status == 400
    else:
        assert isinstance(push.document, dict)
        json.loads(push.payload())


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["event_log", "Picture", "anpr.xml"]),
            st.sampled_from(["application/json", "image/jpeg", "text/xml", "text/plain"]),
            st.binary(max_size=60),
        ),
        max_size=5,
    )
)
def test_isapi_any_parts(parts: list[tuple[str, str, bytes]]) -> None:
    body, content_type = multipart(parts)
    try:
        read_push(body, content_type, max_parts=4, max_depth=16)
    except Refused as refusal:
        assert refusal.reason in (Reason.MALFORMED_BODY, Reason.OVERSIZE, Reason.MALFORMED_JSON,
                                  Reason.MALFORMED_XML, Reason.FORBIDDEN_XML, Reason.DUPLICATE_KEY,
                                  Reason.INVALID_UTF8, Reason.INVALID_TEXT, Reason.TOO_DEEP)  # fmt: skip


def test_isapi_too_many_parts() -> None:
    body, content_type = multipart([("Picture", "image/jpeg", jpeg(10))] * 5)
    with pytest.raises(Refused) as info:
        read_push(body, content_type, max_parts=4, max_depth=16)
    assert info.value.reason is Reason.OVERSIZE


# -- GA/T 1400 list objects -------------------------------------------------------------


@FUZZ
@given(json_values)
def test_gat1400_any_json_body(body: object) -> None:
    kind = KINDS["MotorVehicles"]
    try:
        items = list_items(body, kind, max_records=10)
    except Refused as refusal:
        assert refusal.reason in (Reason.MALFORMED_BODY, Reason.OVERSIZE)
        return
    for item in items:
        converted = to_item(
            item, kind, sender="31010800001190000002", zone=ZONE, max_image_bytes=1000
        )
        json.loads(converted.record.payload)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["Type", "Data", "ShotTime", "FileFormat"]),
        st.text(max_size=40) | st.integers(),
        max_size=4,
    )
)
def test_gat1400_any_sub_image(info: dict[str, object]) -> None:
    record = {"MotorVehicleID": "1", "SubImageList": {"SubImageInfoObject": [info]}}
    item = to_item(record, KINDS["MotorVehicles"], sender="s", zone=ZONE, max_image_bytes=100)
    assert all(i.problem is not None or i.data for i in item.record.images)


def test_gat1400_pictures_and_personal_text() -> None:
    record = {
        "FaceID": "f1", "DeviceID": "31010800001190000003", "Name": "张三", "IDNumber": "330102199001011234",
        "SubImageList": {"SubImageInfoObject": [
            {"Type": "11", "ShotTime": "20261122210500", "Data": b64(jpeg(30))},
            {"Type": "14", "Data": "not base64!"},
            {"Type": "14", "Data": b64(jpeg(400))},
        ]},
    }  # fmt: skip
    item = to_item(record, KINDS["Faces"], sender="x", zone=ZONE, max_image_bytes=200)
    assert item.device_id == "31010800001190000003" and item.record_id == "f1"
    assert item.record.topic == "gat1400/31010800001190000003/Face"
    document = json.loads(item.record.payload)
    assert "Name" not in document and "SubImageList" not in document
    first, bad, big = item.record.images
    assert first.data == jpeg(30) and first.captured_at is not None
    assert first.captured_at.isoformat() == "2026-11-22T21:05:00+08:00"
    assert bad.problem == "Data is not base64" and big.problem == "more than 200 bytes"


# -- digest -----------------------------------------------------------------------------


def digest_server(authority: DigestAuthority, password: str = "pw") -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        credentials = parse_authorization(request.headers.get("authorization"))
        if credentials is None:
            return httpx.Response(401, headers={"WWW-Authenticate": authority.challenge()})
        verdict = authority.verify(
            credentials, method=request.method, path=request.url.path, password=password
        )
        if verdict is Verdict.STALE:
            return httpx.Response(
                401, headers={"WWW-Authenticate": authority.challenge(stale=True)}
            )
        return httpx.Response(200 if verdict is Verdict.OK else 403, text=verdict.value)

    return httpx.MockTransport(handle)


@pytest.mark.parametrize("algorithm", ["MD5", "SHA-256"])
def test_digest_interoperates_with_httpx(algorithm: str) -> None:
    authority = DigestAuthority("realm", algorithm=algorithm)  # type: ignore[arg-type]
    with httpx.Client(
        transport=digest_server(authority), auth=httpx.DigestAuth("dev", "pw")
    ) as http:
        assert [http.post("http://d/VIID/System/Register").status_code for _ in range(3)] == [
            200
        ] * 3
    with httpx.Client(
        transport=digest_server(authority), auth=httpx.DigestAuth("dev", "nope")
    ) as http:
        assert http.post("http://d/VIID/System/Register").status_code == 403


def test_digest_replay_stale_and_other_resource() -> None:
    now = [1_000_000.0]
    authority = DigestAuthority("realm", nonce_ttl_s=60, clock=lambda: now[0])
    captured: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        header = request.headers.get("authorization")
        if header is None:
            return httpx.Response(401, headers={"WWW-Authenticate": authority.challenge()})
        captured.append(header)
        return httpx.Response(200)

    with httpx.Client(
        transport=httpx.MockTransport(handle), auth=httpx.DigestAuth("dev", "pw")
    ) as http:
        http.post("http://d/VIID/System/Register")
    credentials = parse_authorization(captured[0])
    assert credentials is not None

    def check(path: str = "/VIID/System/Register") -> Verdict:
        assert credentials is not None
        return authority.verify(credentials, method="POST", path=path, password="pw")

    assert check("/VIID/MotorVehicles") is Verdict.BAD  # computed for another resource
    assert check() is Verdict.OK
    assert check() is Verdict.BAD  # the same nonce-count again: a replay
    now[0] += 61
    assert check() is Verdict.STALE
    forged = parse_authorization(
        captured[0].replace(credentials.nonce, credentials.nonce[:-2] + "00")
    )
    assert forged is not None
    assert (
        authority.verify(forged, method="POST", path="/VIID/System/Register", password="pw")
        is Verdict.BAD
    )


@FUZZ
@given(st.text(max_size=200))
def test_digest_any_header(header: str) -> None:
    authority = DigestAuthority("realm")
    credentials = parse_authorization("Digest " + header)
    if credentials is not None:
        assert (
            authority.verify(credentials, method="POST", path="/x", password="pw") is not Verdict.OK
        )
