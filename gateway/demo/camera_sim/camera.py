"""One simulated ONVIF camera: device, media and events (PullPoint) services over SOAP, a
snapshot over HTTP, and a small JSON control API under ``/sim`` (loopback only).

The camera's clock can be skewed, its advertised host changed (to test NAT rewriting), and it
can be made hostile (malformed SOAP, an XXE payload, an entity bomb, a response that never
ends, a subscription that stops answering or refuses to renew).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import secrets
import socket
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import isodate
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.demo.camera_sim import soap
from gateway.demo.camera_sim.jpeg import snapshot_jpeg

log = logging.getLogger(__name__)

Hostile = Literal["malformed", "xxe", "billion_laughs", "oversize", "hang"]
SOAP_CT = "application/soap+xml; charset=utf-8"
CLOCK_TOLERANCE_S = 30.0  # WS-Security Created must be this close to the camera's clock
MAX_PULL_WAIT_S = 30.0

# Ready-made notifications per event kind: (topic, source items, data items).
SAMPLE_EVENTS: dict[str, tuple[str, dict[str, str], dict[str, str]]] = {
    "motion": (
        "tns1:RuleEngine/CellMotionDetector/Motion",
        {
            "VideoSourceConfigurationToken": "vsc_1",
            "VideoAnalyticsConfigurationToken": "va_1",
            "Rule": "MyMotionDetectorRule",
        },
        {"IsMotion": "true"},
    ),
    "motion_alarm": ("tns1:VideoSource/MotionAlarm", {"Source": "vs_1"}, {"State": "true"}),
    "intrusion": (
        "tns1:RuleEngine/FieldDetector/ObjectsInside",
        {
            "VideoSourceConfigurationToken": "vsc_1",
            "VideoAnalyticsConfigurationToken": "va_1",
            "Rule": "PerimeterField",
        },
        {"IsInside": "true"},
    ),
    "line_crossing": (
        "tns1:RuleEngine/LineDetector/Crossed",
        {
            "VideoSourceConfigurationToken": "vsc_1",
            "VideoAnalyticsConfigurationToken": "va_1",
            "Rule": "FenceLine",
        },
        {"ObjectId": "17"},
    ),
    "tamper": (
        "tns1:RuleEngine/TamperDetector/Tamper",
        {
            "VideoSourceConfigurationToken": "vsc_1",
            "VideoAnalyticsConfigurationToken": "va_1",
            "Rule": "Tamper",
        },
        {"IsTamper": "true"},
    ),
    "scene_change": (
        "tns1:VideoSource/GlobalSceneChange/ImagingService",
        {"Source": "vs_1"},
        {"State": "true"},
    ),
    "digital_input": (
        "tns1:Device/Trigger/DigitalInput",
        {"InputToken": "DI_1"},
        {"LogicalState": "true"},
    ),
    "access_granted": (
        "tns1:AccessControl/AccessGranted/Credential",
        {"AccessPointToken": "ap_main"},
        {"CredentialToken": "cred-0042", "CredentialHolderName": "张三"},
    ),
    "access_denied": (
        "tns1:AccessControl/Denied/Credential",
        {"AccessPointToken": "ap_main"},
        {
            "CredentialToken": "cred-0099",
            "CredentialHolderName": "李四",
            "Reason": "CredentialNotEnabled",
        },
    ),
    "door_forced_open": (
        "tns1:Door/State/DoorAlarm",
        {"DoorToken": "door_1"},
        {"State": "DoorForcedOpen"},
    ),
    "door_open_too_long": (
        "tns1:Door/State/DoorAlarm",
        {"DoorToken": "door_1"},
        {"State": "DoorOpenTooLong"},
    ),
    "door_tamper": (
        "tns1:Door/State/DoorTamper",
        {"DoorToken": "door_1"},
        {"State": "TamperDetected"},
    ),
}


@dataclass
class _Subscription:
    id: str
    terminates: datetime  # camera clock
    queue: deque[soap.SimMessage] = field(default_factory=lambda: deque(maxlen=1000))
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    closed: bool = False


@dataclass
class SimStats:
    requests: dict[str, int] = field(default_factory=dict)
    auth_failures: int = 0
    subscriptions_created: int = 0
    renewals: int = 0
    restarts: int = 0


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:  # the host process owns its signals
        yield


class SimCamera:
    """A camera listening on ``host:port``; ``start``/``stop`` from a running event loop."""

    def __init__(
        self,
        camera_id: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "admin",
        password: str = "sim-password",
        clock_skew_s: float = 0.0,
        advertised_host: str | None = None,
        advertised_port: int | None = None,
        manufacturer: str = "Lianfang",
        model: str = "SimCam-1",
        max_subscription_s: float = 3600.0,
    ) -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the camera simulator serves loopback only")
        self.id = camera_id
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.clock_skew = timedelta(seconds=clock_skew_s)
        self.advertised_host = advertised_host
        self.advertised_port = advertised_port
        self.manufacturer = manufacturer
        self.model = model
        self.max_subscription_s = max_subscription_s
        self.hostile: Hostile | None = None
        self.hostile_operations: frozenset[str] | None = None  # None: every SOAP operation
        self.canary_url = "http://127.0.0.1:9/canary"
        self.silent = False  # PullMessages never answers (a wedged subscription)
        self.refuse_renew = False
        self.stats = SimStats()
        self._subs: dict[str, _Subscription] = {}
        self._ids = itertools.count(1)
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._nonces: deque[str] = deque(maxlen=1000)
        self.app = Starlette(
            routes=[
                Route("/onvif/{service}", self._soap, methods=["POST"]),
                Route("/onvif/snapshot.jpg", self._snapshot, methods=["GET"]),
                Route("/sim/state", self._api_state, methods=["GET"]),
                Route("/sim/events", self._api_event, methods=["POST"]),
                Route("/sim/restart", self._api_restart, methods=["POST"]),
                Route("/sim/mode", self._api_mode, methods=["POST"]),
            ]
        )

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def _advertised_base(self) -> str:
        host = self.advertised_host or self.host
        return f"http://{host}:{self.advertised_port or self.port}"

    def now(self) -> datetime:
        return datetime.now(UTC) + self.clock_skew

    async def start(self) -> None:
        if self._server is not None:
            return
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(64)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", lifespan="off", access_log=False,
            timeout_keep_alive=2,
        )  # fmt: skip
        # A powered-off camera does not finish its answers: cut hanging long-polls quickly.
        config.timeout_graceful_shutdown = 0.2  # type: ignore[assignment]  # float works
        server = _QuietServer(config)
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name=f"sim-{self.id}")
        for _ in range(500):
            if server.started or self._task.done():
                break
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()
        if not server.started:
            raise RuntimeError(f"simulated camera {self.id} did not start")

    async def stop(self) -> None:
        """Power off: the port refuses connections until ``start``; subscriptions are lost."""
        self._drop_subscriptions()
        server, task = self._server, self._task
        self._server = self._task = None
        if server is not None and task is not None:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def restart(self) -> None:
        """Reboot: every subscription is lost, the camera answers again on the same port."""
        self.stats.restarts += 1
        await self.stop()
        await self.start()

    def _drop_subscriptions(self) -> None:
        for sub in self._subs.values():
            sub.closed = True
            sub.wake.set()
        self._subs.clear()

    # -- events -----------------------------------------------------------------------------

    def inject(
        self,
        topic: str,
        source: dict[str, str] | None = None,
        data: dict[str, str] | None = None,
        *,
        operation: str = "Changed",
        utc_time: datetime | None = None,
    ) -> None:
        """Queue one notification for every live subscription."""
        msg = soap.SimMessage(
            topic,
            utc_time or self.now(),
            tuple((source or {}).items()),
            tuple((data or {}).items()),
            operation,
        )
        for sub in self._subs.values():
            sub.queue.append(msg)
            sub.wake.set()

    def inject_kind(self, kind: str) -> None:
        topic, source, data = SAMPLE_EVENTS[kind]
        self.inject(topic, source, data)

    def subscriptions(self) -> int:
        return len(self._subs)

    # -- SOAP -------------------------------------------------------------------------------

    def _authorised(self, req: soap.SoapRequest) -> bool:
        if req.username != self.username or not req.password_digest:
            return False
        if req.password_type and not req.password_type.endswith("#PasswordDigest"):
            return False
        if not req.nonce or not req.created:
            return False
        try:
            created = datetime.fromisoformat(req.created.replace("Z", "+00:00"))
        except ValueError:
            return False
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        if abs((created - self.now()).total_seconds()) > CLOCK_TOLERANCE_S:
            return False
        if req.nonce in self._nonces:
            return False  # replay
        try:
            expected = soap.password_digest(req.nonce, req.created, self.password)
        except ValueError:
            return False
        if not secrets.compare_digest(expected, req.password_digest):
            return False
        self._nonces.append(req.nonce)
        return True

    def _hostile_body(self, operation: str) -> Response | None:
        mode = self.hostile
        if mode is None:
            return None
        if self.hostile_operations is not None and operation not in self.hostile_operations:
            return None
        if mode == "malformed":
            return Response(soap.malformed(), media_type=SOAP_CT)
        if mode == "xxe":
            return Response(soap.xxe(self.canary_url), media_type=SOAP_CT)
        if mode == "billion_laughs":
            return Response(soap.billion_laughs(), media_type=SOAP_CT)
        if mode == "oversize":

            async def endless() -> Any:
                yield b'<?xml version="1.0"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>'
                for _ in range(4096):  # 64 MiB unless the client hangs up first
                    yield b"<x>" + b"A" * 16384 + b"</x>"
                    await asyncio.sleep(0)

            return StreamingResponse(endless(), media_type=SOAP_CT)
        return None  # "hang" is handled by the caller

    async def _soap(self, request: Request) -> Response:
        service = request.path_params["service"]
        try:
            req = soap.parse_request(await request.body())
        except soap.BadRequest as exc:
            return Response(
                soap.fault("Sender", "ter:WellFormed", str(exc)), 400, media_type=SOAP_CT
            )
        op = req.operation
        self.stats.requests[op] = self.stats.requests.get(op, 0) + 1
        if self.hostile == "hang" and (
            self.hostile_operations is None or op in self.hostile_operations
        ):
            await asyncio.sleep(3600)
        hostile = self._hostile_body(op)
        if hostile is not None:
            return hostile
        if op == "GetSystemDateAndTime":
            return self._ok(soap.system_date_and_time(self.now()))
        if not self._authorised(req):
            self.stats.auth_failures += 1
            return Response(
                soap.fault("Sender", "ter:NotAuthorized", "Sender not authorized"),
                400, media_type=SOAP_CT,
            )  # fmt: skip
        base = self._advertised_base()
        if op == "GetDeviceInformation":
            return self._ok(
                soap.device_information(self.manufacturer, self.model, "1.0.0", f"SIM-{self.id}")
            )
        if op == "GetServices":
            return self._ok(soap.services(base))
        if op == "GetCapabilities":
            return self._ok(soap.capabilities(base))
        if op == "GetProfiles":
            return self._ok(
                soap.profiles([("main", "MainStream", 1920, 1080), ("sub", "SubStream", 640, 360)])
            )
        if op == "GetStreamUri":
            token = req.text("ProfileToken") or "main"
            host = self.advertised_host or self.host
            return self._ok(soap.media_uri("GetStreamUri", f"rtsp://{host}:554/{token}"))
        if op == "GetSnapshotUri":
            return self._ok(soap.media_uri("GetSnapshotUri", f"{base}/onvif/snapshot.jpg"))
        if op == "CreatePullPointSubscription":
            return self._create_subscription(req, base)
        if service == "subscription":
            return await self._subscription_op(req, request)
        return Response(
            soap.fault("Receiver", "ter:ActionNotSupported", f"{op} is not supported"),
            400, media_type=SOAP_CT,
        )  # fmt: skip

    @staticmethod
    def _ok(body: str) -> Response:
        return Response(body, media_type=SOAP_CT)

    def _duration(self, value: str | None, default: float) -> float:
        if not value:
            return default
        try:
            if value.startswith("P"):
                return float(isodate.parse_duration(value).total_seconds())
            absolute = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return (absolute - self.now()).total_seconds()
        except (ValueError, isodate.ISO8601Error):
            return default

    def _create_subscription(self, req: soap.SoapRequest, base: str) -> Response:
        seconds = min(
            self._duration(req.text("InitialTerminationTime"), 60), self.max_subscription_s
        )
        sub = _Subscription(
            f"{next(self._ids)}-{secrets.token_hex(4)}", self.now() + timedelta(seconds=seconds)
        )
        self._subs[sub.id] = sub
        self.stats.subscriptions_created += 1
        address = f"{base}/onvif/subscription?id={sub.id}"
        return self._ok(soap.create_pull_point(address, self.now(), sub.terminates))

    def _unknown_subscription(self) -> Response:
        return Response(
            soap.fault("Receiver", "ter:InvalidArgVal", "unknown or expired subscription"),
            400, media_type=SOAP_CT,
        )  # fmt: skip

    async def _subscription_op(self, req: soap.SoapRequest, request: Request) -> Response:
        sub = self._subs.get(request.query_params.get("id", ""))
        if sub is not None and sub.terminates <= self.now():
            self._subs.pop(sub.id, None)
            sub = None
        if sub is None:
            return self._unknown_subscription()
        if req.operation == "PullMessages":
            if self.silent:
                await asyncio.sleep(3600)
            wait = min(self._duration(req.text("Timeout"), 10), MAX_PULL_WAIT_S)
            limit = int(req.text("MessageLimit") or 100)
            if not sub.queue:
                sub.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sub.wake.wait(), wait)
            if sub.closed:
                return self._unknown_subscription()
            out = [sub.queue.popleft() for _ in range(min(limit, len(sub.queue)))]
            return self._ok(soap.pull_messages(self.now(), sub.terminates, out))
        if req.operation == "Renew":
            if self.refuse_renew:
                return Response(
                    soap.fault("Receiver", "wsrf-rw:ResourceUnknownFault", "renew refused"),
                    400, media_type=SOAP_CT,
                )  # fmt: skip
            seconds = min(self._duration(req.text("TerminationTime"), 60), self.max_subscription_s)
            sub.terminates = self.now() + timedelta(seconds=seconds)
            self.stats.renewals += 1
            return self._ok(soap.renew(self.now(), sub.terminates))
        if req.operation == "Unsubscribe":
            self._subs.pop(sub.id, None)
            sub.closed = True
            sub.wake.set()
            return self._ok(soap.unsubscribe())
        if req.operation == "SetSynchronizationPoint":
            return self._ok(soap.envelope("<tev:SetSynchronizationPointResponse/>"))
        return Response(
            soap.fault("Receiver", "ter:ActionNotSupported", f"{req.operation} is not supported"),
            400, media_type=SOAP_CT,
        )  # fmt: skip

    # -- snapshot (HTTP Basic or Digest) -------------------------------------------------------

    async def _snapshot(self, request: Request) -> Response:
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            import base64

            try:
                user, _, pw = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                user, pw = "", ""
            if user == self.username and secrets.compare_digest(pw, self.password):
                return self._picture()
        elif header.startswith("Digest ") and self._digest_ok(request, header[7:]):
            return self._picture()
        nonce = secrets.token_hex(16)
        return Response(
            status_code=401,
            headers={
                "WWW-Authenticate": f'Digest realm="simcam", qop="auth", nonce="{nonce}", algorithm=MD5'
            },
        )

    def _picture(self) -> Response:
        now = datetime.now(UTC) + self.clock_skew
        return Response(snapshot_jpeg(self.id, now), media_type="image/jpeg")

    def _digest_ok(self, request: Request, params: str) -> bool:
        fields: dict[str, str] = {}
        for part in params.split(","):
            key, _, value = part.strip().partition("=")
            fields[key] = value.strip('"')
        if fields.get("username") != self.username or fields.get("realm") != "simcam":
            return False

        def md5(text: str) -> str:
            return hashlib.md5(text.encode()).hexdigest()

        ha1 = md5(f"{self.username}:simcam:{self.password}")
        ha2 = md5(f"{request.method}:{fields.get('uri', '')}")
        expected = md5(
            f"{ha1}:{fields.get('nonce', '')}:{fields.get('nc', '')}:{fields.get('cnonce', '')}"
            f":{fields.get('qop', '')}:{ha2}"
        )
        return secrets.compare_digest(expected, fields.get("response", ""))

    # -- JSON control API --------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "url": self.url,
            "subscriptions": len(self._subs),
            "clock_skew_s": self.clock_skew.total_seconds(),
            "advertised_host": self.advertised_host,
            "hostile": self.hostile,
            "silent": self.silent,
            "refuse_renew": self.refuse_renew,
            "stats": {
                "requests": dict(self.stats.requests),
                "auth_failures": self.stats.auth_failures,
                "subscriptions_created": self.stats.subscriptions_created,
                "renewals": self.stats.renewals,
                "restarts": self.stats.restarts,
            },
            "event_kinds": sorted(SAMPLE_EVENTS),
        }

    async def _api_state(self, request: Request) -> Response:
        return JSONResponse(self.state())

    async def _api_event(self, request: Request) -> Response:
        body = await request.json()
        if not isinstance(body, dict):
            return JSONResponse({"error": "expected an object"}, 422)
        if "kind" in body:
            if body["kind"] not in SAMPLE_EVENTS:
                return JSONResponse({"error": f"unknown kind; one of {sorted(SAMPLE_EVENTS)}"}, 422)
            self.inject_kind(str(body["kind"]))
        else:
            topic = body.get("topic")
            if not isinstance(topic, str) or not topic:
                return JSONResponse({"error": "topic (or kind) is required"}, 422)
            self.inject(
                topic,
                {str(k): str(v) for k, v in dict(body.get("source") or {}).items()},
                {str(k): str(v) for k, v in dict(body.get("data") or {}).items()},
                operation=str(body.get("operation", "Changed")),
            )
        return JSONResponse({"queued_for": len(self._subs)})

    async def _api_restart(self, request: Request) -> Response:
        # Drop subscriptions only: the HTTP server answering this request stays up.
        self.stats.restarts += 1
        self._drop_subscriptions()
        return JSONResponse({"restarted": True})

    async def _api_mode(self, request: Request) -> Response:
        body = await request.json()
        if not isinstance(body, dict):
            return JSONResponse({"error": "expected an object"}, 422)
        if "hostile" in body:
            value = body["hostile"]
            if value not in (None, "malformed", "xxe", "billion_laughs", "oversize", "hang"):
                return JSONResponse({"error": "unknown hostile mode"}, 422)
            self.hostile = value
        for key in ("silent", "refuse_renew"):
            if key in body:
                setattr(self, key, bool(body[key]))
        if "clock_skew_s" in body:
            self.clock_skew = timedelta(seconds=float(body["clock_skew_s"]))
        return JSONResponse(self.state())
