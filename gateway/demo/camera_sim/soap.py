"""SOAP envelopes the simulated camera answers with, and the request parser it uses.

Answers are small string templates (values escaped); requests are parsed with a locked-down
lxml parser: no DTD, no entities, no network, no huge trees.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

from lxml import etree

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "wsu": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd",
    "wsa": "http://www.w3.org/2005/08/addressing",
}
ENVELOPE_NS = (
    'xmlns:s="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:tt="http://www.onvif.org/ver10/schema" '
    'xmlns:tds="http://www.onvif.org/ver10/device/wsdl" '
    'xmlns:trt="http://www.onvif.org/ver10/media/wsdl" '
    'xmlns:tev="http://www.onvif.org/ver10/events/wsdl" '
    'xmlns:wsnt="http://docs.oasis-open.org/wsn/b-2" '
    'xmlns:wsa="http://www.w3.org/2005/08/addressing" '
    'xmlns:ter="http://www.onvif.org/ver10/error" '
    'xmlns:tns1="http://www.onvif.org/ver10/topics" '
    'xmlns:wsrf-rw="http://docs.oasis-open.org/wsrf/rw-2"'
)
MAX_REQUEST_BYTES = 64 * 1024

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, dtd_validation=False
)


class BadRequest(Exception):
    """The request is not a SOAP envelope this simulator understands."""


@dataclass(frozen=True)
class SoapRequest:
    operation: str  # local name of the first Body child
    body: etree._Element
    username: str | None
    password_digest: str | None
    password_type: str | None
    nonce: str | None
    created: str | None

    def text(self, local_name: str) -> str | None:
        for el in self.body.iter():
            if isinstance(el.tag, str) and etree.QName(el).localname == local_name:
                return (el.text or "").strip()
        return None


def parse_request(data: bytes) -> SoapRequest:
    if len(data) > MAX_REQUEST_BYTES:
        raise BadRequest("request too large")
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as exc:
        raise BadRequest(f"not XML: {exc}") from exc
    docinfo = root.getroottree().docinfo
    if docinfo.doctype:
        raise BadRequest("DTDs are not accepted")
    body = next((el for el in root if etree.QName(el).localname == "Body"), None)
    if body is None or len(body) == 0:
        raise BadRequest("no SOAP Body")
    op_el = body[0]
    header = next((el for el in root if etree.QName(el).localname == "Header"), None)
    fields: dict[str, str | None] = dict.fromkeys(
        ("Username", "Password", "Nonce", "Created", "PasswordType")
    )
    if header is not None:
        for el in header.iter():
            if not isinstance(el.tag, str):
                continue
            name = etree.QName(el).localname
            if name in ("Username", "Password", "Nonce", "Created") and fields[name] is None:
                fields[name] = (el.text or "").strip()
                if name == "Password":
                    fields["PasswordType"] = el.get("Type")
    return SoapRequest(
        etree.QName(op_el).localname,
        op_el,
        fields["Username"],
        fields["Password"],
        fields["PasswordType"],
        fields["Nonce"],
        fields["Created"],
    )


def password_digest(nonce_b64: str, created: str, password: str) -> str:
    raw = base64.b64decode(nonce_b64) + created.encode() + password.encode()
    return base64.b64encode(hashlib.sha1(raw).digest()).decode()


def iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope(body: str, header: str = "") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<s:Envelope {ENVELOPE_NS}>'
        f"<s:Header>{header}</s:Header><s:Body>{body}</s:Body></s:Envelope>"
    )


def fault(code: str, subcode: str, reason: str) -> str:
    return envelope(
        f"<s:Fault><s:Code><s:Value>s:{code}</s:Value><s:Subcode><s:Value>{subcode}</s:Value>"
        f'</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en">{escape(reason)}</s:Text>'
        "</s:Reason></s:Fault>"
    )


def system_date_and_time(now: datetime) -> str:
    t = now.astimezone(UTC)
    return envelope(
        "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
        "<tt:DateTimeType>Manual</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>"
        "<tt:TimeZone><tt:TZ>CST-8</tt:TZ></tt:TimeZone>"
        f"<tt:UTCDateTime><tt:Time><tt:Hour>{t.hour}</tt:Hour><tt:Minute>{t.minute}</tt:Minute>"
        f"<tt:Second>{t.second}</tt:Second></tt:Time><tt:Date><tt:Year>{t.year}</tt:Year>"
        f"<tt:Month>{t.month}</tt:Month><tt:Day>{t.day}</tt:Day></tt:Date></tt:UTCDateTime>"
        "</tds:SystemDateAndTime></tds:GetSystemDateAndTimeResponse>"
    )


def device_information(manufacturer: str, model: str, firmware: str, serial: str) -> str:
    return envelope(
        "<tds:GetDeviceInformationResponse>"
        f"<tds:Manufacturer>{escape(manufacturer)}</tds:Manufacturer>"
        f"<tds:Model>{escape(model)}</tds:Model>"
        f"<tds:FirmwareVersion>{escape(firmware)}</tds:FirmwareVersion>"
        f"<tds:SerialNumber>{escape(serial)}</tds:SerialNumber>"
        "<tds:HardwareId>lianfang-sim</tds:HardwareId>"
        "</tds:GetDeviceInformationResponse>"
    )


SERVICE_PATHS = {
    "http://www.onvif.org/ver10/device/wsdl": "/onvif/device_service",
    "http://www.onvif.org/ver10/media/wsdl": "/onvif/media_service",
    "http://www.onvif.org/ver10/events/wsdl": "/onvif/events_service",
}


def services(base: str) -> str:
    items = "".join(
        f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{escape(base + path)}"
        "</tds:XAddr><tds:Version><tt:Major>2</tt:Major><tt:Minor>60</tt:Minor></tds:Version>"
        "</tds:Service>"
        for ns, path in SERVICE_PATHS.items()
    )
    return envelope(f"<tds:GetServicesResponse>{items}</tds:GetServicesResponse>")


def capabilities(base: str) -> str:
    return envelope(
        "<tds:GetCapabilitiesResponse><tds:Capabilities>"
        f"<tt:Device><tt:XAddr>{escape(base)}/onvif/device_service</tt:XAddr></tt:Device>"
        f"<tt:Events><tt:XAddr>{escape(base)}/onvif/events_service</tt:XAddr>"
        "<tt:WSSubscriptionPolicySupport>false</tt:WSSubscriptionPolicySupport>"
        "<tt:WSPullPointSupport>true</tt:WSPullPointSupport>"
        "<tt:WSPausableSubscriptionManagerInterfaceSupport>false"
        "</tt:WSPausableSubscriptionManagerInterfaceSupport></tt:Events>"
        f"<tt:Media><tt:XAddr>{escape(base)}/onvif/media_service</tt:XAddr>"
        "<tt:StreamingCapabilities><tt:RTPMulticast>false</tt:RTPMulticast>"
        "<tt:RTP_TCP>true</tt:RTP_TCP><tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP>"
        "</tt:StreamingCapabilities></tt:Media>"
        "</tds:Capabilities></tds:GetCapabilitiesResponse>"
    )


def profiles(tokens: list[tuple[str, str, int, int]]) -> str:
    out = []
    for token, name, width, height in tokens:
        out.append(
            f'<trt:Profiles token={quoteattr(token)} fixed="true"><tt:Name>{escape(name)}</tt:Name>'
            '<tt:VideoSourceConfiguration token="vsc_1"><tt:Name>vsc</tt:Name>'
            "<tt:UseCount>2</tt:UseCount><tt:SourceToken>vs_1</tt:SourceToken>"
            f'<tt:Bounds x="0" y="0" width="{width}" height="{height}"/>'
            "</tt:VideoSourceConfiguration>"
            f'<tt:VideoEncoderConfiguration token="vec_{escape(token)}"><tt:Name>enc</tt:Name>'
            "<tt:UseCount>1</tt:UseCount><tt:Encoding>H264</tt:Encoding>"
            f"<tt:Resolution><tt:Width>{width}</tt:Width><tt:Height>{height}</tt:Height>"
            "</tt:Resolution><tt:Quality>5</tt:Quality>"
            "<tt:SessionTimeout>PT60S</tt:SessionTimeout></tt:VideoEncoderConfiguration>"
            "</trt:Profiles>"
        )
    return envelope(f"<trt:GetProfilesResponse>{''.join(out)}</trt:GetProfilesResponse>")


def media_uri(operation: str, uri: str) -> str:
    return envelope(
        f"<trt:{operation}Response><trt:MediaUri><tt:Uri>{escape(uri)}</tt:Uri>"
        "<tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
        "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout>"
        f"</trt:MediaUri></trt:{operation}Response>"
    )


def create_pull_point(address: str, now: datetime, terminates: datetime) -> str:
    return envelope(
        "<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference>"
        f"<wsa:Address>{escape(address)}</wsa:Address></tev:SubscriptionReference>"
        f"<wsnt:CurrentTime>{iso(now)}</wsnt:CurrentTime>"
        f"<wsnt:TerminationTime>{iso(terminates)}</wsnt:TerminationTime>"
        "</tev:CreatePullPointSubscriptionResponse>"
    )


@dataclass(frozen=True)
class SimMessage:
    """One notification as the camera sends it."""

    topic: str
    utc_time: datetime
    source: tuple[tuple[str, str], ...]
    data: tuple[tuple[str, str], ...]
    operation: str = "Changed"


def _items(items: tuple[tuple[str, str], ...]) -> str:
    return "".join(f"<tt:SimpleItem Name={quoteattr(n)} Value={quoteattr(v)}/>" for n, v in items)


def notification(msg: SimMessage) -> str:
    return (
        "<wsnt:NotificationMessage>"
        '<wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/ConcreteSet">'
        f"{escape(msg.topic)}</wsnt:Topic><wsnt:Message>"
        f'<tt:Message UtcTime="{iso(msg.utc_time)}" PropertyOperation={quoteattr(msg.operation)}>'
        f"<tt:Source>{_items(msg.source)}</tt:Source><tt:Data>{_items(msg.data)}</tt:Data>"
        "</tt:Message></wsnt:Message></wsnt:NotificationMessage>"
    )


def pull_messages(now: datetime, terminates: datetime, messages: list[SimMessage]) -> str:
    return envelope(
        f"<tev:PullMessagesResponse><tev:CurrentTime>{iso(now)}</tev:CurrentTime>"
        f"<tev:TerminationTime>{iso(terminates)}</tev:TerminationTime>"
        f"{''.join(notification(m) for m in messages)}</tev:PullMessagesResponse>"
    )


def renew(now: datetime, terminates: datetime) -> str:
    return envelope(
        f"<wsnt:RenewResponse><wsnt:TerminationTime>{iso(terminates)}</wsnt:TerminationTime>"
        f"<wsnt:CurrentTime>{iso(now)}</wsnt:CurrentTime></wsnt:RenewResponse>"
    )


def unsubscribe() -> str:
    return envelope("<wsnt:UnsubscribeResponse/>")


def xxe(canary_url: str) -> str:
    """A PullMessages answer that tries to make the client fetch ``canary_url``."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<!DOCTYPE s:Envelope [<!ENTITY xxe SYSTEM "{canary_url}">]>\n'
        f"<s:Envelope {ENVELOPE_NS}><s:Body><tev:PullMessagesResponse>"
        "<tev:CurrentTime>&xxe;</tev:CurrentTime></tev:PullMessagesResponse></s:Body>"
        "</s:Envelope>"
    )


def billion_laughs() -> str:
    lol = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    ]
    return (
        '<?xml version="1.0"?>\n'
        f"<!DOCTYPE s:Envelope [{''.join(lol)}]>\n"
        f"<s:Envelope {ENVELOPE_NS}><s:Body><tev:PullMessagesResponse>"
        "<tev:CurrentTime>&lol9;</tev:CurrentTime></tev:PullMessagesResponse></s:Body>"
        "</s:Envelope>"
    )


def malformed() -> str:
    return f"<s:Envelope {ENVELOPE_NS}><s:Body><tev:PullMessagesResponse><unclosed></s:Body>"
