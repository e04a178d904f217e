"""GB/T 28181 parsing: SIP messages (our bounded parser), MANSCDP XML (GB2312, no DTD, no
entities), digest; each fuzzed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.receivers.gb28181 import manscdp, sip
from gateway.receivers.gb28181.digest import DigestAuth, authorization
from gateway.receivers.gb28181.transport import FramingError, next_message

DEV = "31010800001320000001"
REGISTER = (
    "REGISTER sip:31010800002000000001@3101080000 SIP/2.0\r\n"
    "v: SIP/2.0/UDP 192.0.2.7:5060;rport;branch=z9hG4bK1\r\n"
    f"f: <sip:{DEV}@3101080000>;tag=a1\r\n"
    f"t: <sip:{DEV}@3101080000>\r\n"
    "i: call-1\r\n"
    "CSeq: 1 REGISTER\r\n"
    f"m: <sip:{DEV}@192.0.2.7:5060>;expires=600\r\n"
    "User-Agent: IP Camera\r\n"
    " folded on\r\n"
    "l: 0\r\n\r\n"
).encode()


def test_parse_gb_register_with_compact_forms_and_digit_domain() -> None:
    message = sip.parse(REGISTER, 65536)
    assert message.is_request and message.method == "REGISTER"
    assert message.from_address.user == DEV  # sip:<20 digits>@<10 digits>: not RFC host grammar
    assert message.cseq == (1, "REGISTER")
    assert message.branch == "z9hG4bK1"
    assert message.contacts[0].params["expires"] == "600"
    assert message.get("User-Agent") == "IP Camera folded on"


def test_response_copies_what_rfc3261_asks_and_tags_to() -> None:
    request = sip.parse(REGISTER, 65536)
    raw = bytes(sip.response(request, 401, "Unauthorized"))
    answer = sip.parse(raw, 65536)
    assert answer.status == 401 and answer.call_id == "call-1"
    assert answer.vias == request.vias and answer.get("CSeq") == "1 REGISTER"
    assert answer.to_address.params.get("tag")


@pytest.mark.parametrize(
    ("data", "status", "answerable"),
    [
        (b"garbage", 400, False),
        (b"HELLO\r\n\r\n", 400, False),
        (REGISTER.replace(b"i: call-1\r\n", b""), 400, False),  # no Call-ID
        (REGISTER.replace(b"CSeq: 1 REGISTER", b"CSeq: x"), 400, False),
        (REGISTER.replace(b"l: 0", b"l: 5"), 400, True),
        (REGISTER.replace(b"l: 0", b"l: 4000") + b"x" * 4000, 413, True),
        (REGISTER.replace(b"User-Agent", b"Bad Header"), 400, False),
    ],
)
def test_bad_messages(data: bytes, status: int, answerable: bool) -> None:
    with pytest.raises(sip.SipError) as caught:
        sip.parse(data, 2048)
    assert caught.value.status == status
    assert (caught.value.request is not None) is answerable


def test_tcp_framing_by_content_length() -> None:
    body = manscdp.notify("Keepalive", 1, DEV, Status="OK")
    one = REGISTER.replace(b"l: 0", b"l: %d" % len(body)) + body
    buffer = bytearray(b"\r\n" + one + one[:30])
    assert next_message(buffer, 65536) == one
    assert next_message(buffer, 65536) is None  # the rest is still coming
    buffer += one[30:]
    assert next_message(buffer, 65536) == one and buffer == b""
    with pytest.raises(FramingError):
        next_message(bytearray(b"MESSAGE x SIP/2.0\r\nVia: a\r\n\r\n"), 65536)  # no length
    with pytest.raises(FramingError):
        next_message(bytearray(b"x" * 70000), 65536)


def test_manscdp_gb2312_alarm() -> None:
    body = manscdp.alarm_notify(
        7,
        DEV,
        priority=1,
        method=5,
        alarm_type=6,
        time="2026-12-04T22:00:00",
        description="南门周界入侵",
    )
    assert "南门".encode("gb2312") in body  # really GB2312 on the wire
    parsed = manscdp.parse(body)
    assert (parsed.root, parsed.cmd_type, parsed.sn, parsed.device_id) == (
        "Notify",
        "Alarm",
        "7",
        DEV,
    )
    assert parsed.fields["AlarmType"] == "6" and parsed.fields["AlarmDescription"] == "南门周界入侵"


def test_manscdp_utf8_declared_and_catalog_items() -> None:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?><Response><CmdType>Catalog</CmdType><SN>3</SN>'
        f'<DeviceID>{DEV}</DeviceID><SumNum>2</SumNum><DeviceList Num="2">'
        "<Item><DeviceID>31010800001310000001</DeviceID><Name>通道一</Name><Status>ON</Status></Item>"
        "<Item><DeviceID>31010800001310000002</DeviceID><Name>通道二</Name></Item>"
        "</DeviceList></Response>"
    ).encode()
    parsed = manscdp.parse(body)
    assert parsed.sum_num == 2
    assert [i.name for i in parsed.items] == ["通道一", "通道二"]


@pytest.mark.parametrize(
    ("body", "forbidden"),
    [
        (
            b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><Notify><CmdType>&x;</CmdType></Notify>',
            True,
        ),
        (
            b'<!DOCTYPE Notify SYSTEM "file:///etc/passwd"><Notify><CmdType>Keepalive</CmdType></Notify>',
            True,
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
            b"<Notify><CmdType>&b;</CmdType></Notify>",
            True,
        ),
        (b"<Notify><CmdType>Keepalive</CmdType>", False),
        (b"<Notify><SN>1</SN></Notify>", False),  # no CmdType
        (b"\xff\xfe\x00<", False),
    ],
)
def test_hostile_or_broken_xml_is_refused(body: bytes, forbidden: bool) -> None:
    with pytest.raises(manscdp.XmlRefused) as caught:
        manscdp.parse(body)
    assert caught.value.forbidden is forbidden


def test_digest() -> None:
    now = [1000.0]
    auth = DigestAuth("3101080000", ttl_s=300, clock=lambda: now[0])
    challenge = auth.challenge()
    nonce = challenge.split('nonce="')[1].split('"')[0]
    header = authorization(
        username=DEV,
        realm="3101080000",
        nonce=nonce,
        method="REGISTER",
        uri="sip:31010800002000000001@3101080000",
        password="pw",
    )
    params = sip.digest_params(header)
    assert params is not None

    def check(p: dict[str, str], user: str = DEV, pw: str = "pw") -> str:
        return auth.check(p, method="REGISTER", username=user, password=pw)

    assert check(params) == "ok"
    assert check(params, pw="wrong") == "bad"
    assert check(params, user="31010800001320000002") == "bad"
    assert check({**params, "nonce": "1" + params["nonce"][1:]}) == "bad"  # forged nonce
    now[0] += 301
    assert check(params) == "stale"
    assert sip.digest_params("Basic abc") is None


@settings(max_examples=500, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=600),
        st.builds(
            lambda a, b: REGISTER[:a] + b, st.integers(0, len(REGISTER)), st.binary(max_size=60)
        ),
    )
)
def test_fuzz_sip_parser(data: bytes) -> None:
    try:
        message = sip.parse(data, 4096)
    except sip.SipError as exc:
        assert 400 <= exc.status < 500
        return
    if message.is_request:
        message.from_address.user  # noqa: B018 - readable once parsed
        message.cseq  # noqa: B018


@settings(max_examples=500, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=400),
        st.text(max_size=200).map(
            lambda t: f"<Notify><CmdType>{t}</CmdType></Notify>".encode("utf-8", "replace")
        ),
    )
)
def test_fuzz_manscdp(data: bytes) -> None:
    try:
        parsed = manscdp.parse(data)
    except manscdp.XmlRefused:
        return
    assert parsed.cmd_type


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=300))
def test_fuzz_digest_params(value: str) -> None:
    params = sip.digest_params(value)
    assert params is None or isinstance(params, dict)
