"""Simulated devices that push over HTTP to the gateway's API port: GA/T 1400 plate cameras
(profile ``gat1400``: register with digest, keep alive, post ``MotorVehicleListObject``s
with pictures) and Hikvision ISAPI devices (``hikvision-acs``: access-controller events with a
picture, multipart; ``hikvision-anpr``: ANPR alerts as ``anpr.xml`` plus pictures). They speak
the protocols as devices do, so the receivers are exercised end to end.

Seeded; ``rate`` scales both heartbeats and events like the MQTT simulator. A refused or
failed push is counted and retried by the device's next turn (a restart of the gateway makes
the GA/T 1400 camera register again).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import json
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import cv2
import httpx
import numpy as np

from gateway.config.sites import DeviceConfig, SiteConfig
from gateway.demo.simulator import payloads as p
from gateway.events import PlateColour, utcnow

log = logging.getLogger(__name__)

PUSH_PROFILES = ("gat1400", "hikvision-acs", "hikvision-anpr")
GAT1400_COLOUR = {"blue": "5", "yellow": "6", "green": "9", "white": "2", "black": "1"}
VIID = {"Content-Type": "application/VIID+JSON"}


@dataclass
class PushStats:
    posted: int = 0
    accepted: int = 0
    refused: int = 0
    failed: int = 0  # not answered (the gateway not up yet, a timeout)
    by_device: Counter[str] = field(default_factory=Counter)


def picture(label: str, seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    """A small synthetic JPEG with a label (ASCII) on it."""
    width, height = size
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), 90, np.uint8)
    img[:] = rng.integers(60, 140, 3, dtype=np.uint8)
    cv2.rectangle(
        img, (width // 4, height // 3), (width * 3 // 4, height * 2 // 3), (230, 230, 230), -1
    )
    cv2.putText(
        img,
        label[:16],
        (width // 4 + 6, height // 2 + 6),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.6,
        (20, 20, 20),
        2,
    )
    ok, jpeg = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 70])
    assert ok
    return bytes(jpeg)


def ascii_plate(plate: str) -> str:
    return "".join(c for c in plate if c.isascii()) or "PLATE"


class PushDevice:
    """One simulated device: ``beat`` (its heartbeat) and ``act`` (an ordinary event)."""

    def __init__(
        self, device: DeviceConfig, client: httpx.AsyncClient, rng: random.Random, stats: PushStats
    ) -> None:
        self.device = device
        self.client = client
        self.rng = rng
        self.stats = stats
        self.seq = rng.randint(1000, 9000)

    async def _post(self, path: str, **kw: object) -> httpx.Response | None:
        self.stats.posted += 1
        self.stats.by_device[self.device.id] += 1
        try:
            response = await self.client.post(path, **kw)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            self.stats.failed += 1
            log.debug("push %s %s failed: %s", self.device.id, path, exc)
            return None
        if response.is_success:
            self.stats.accepted += 1
        else:
            self.stats.refused += 1
            log.warning("push %s %s: HTTP %s", self.device.id, path, response.status_code)
        return response

    async def beat(self, now: datetime) -> None:
        raise NotImplementedError

    async def act(self, now: datetime) -> None:
        raise NotImplementedError


class Gat1400Camera(PushDevice):
    registered = False

    def _headers(self) -> dict[str, str]:
        return {**VIID, "User-Identify": self.device.id}

    async def register(self) -> bool:
        body = {"RegisterObject": {"DeviceID": self.device.id}}
        answer = await self._post("/VIID/System/Register", json=body, headers=VIID)
        self.registered = answer is not None and answer.status_code == 200
        return self.registered

    async def beat(self, now: datetime) -> None:
        if not self.registered and not await self.register():
            return
        body = {"KeepaliveObject": {"DeviceID": self.device.id}}
        answer = await self._post("/VIID/System/Keepalive", json=body, headers=self._headers())
        if answer is not None and answer.status_code == 401:
            self.registered = False  # the gateway restarted: register again next time

    async def act(self, now: datetime) -> None:
        if not self.registered and not await self.register():
            return
        self.seq += 1
        colour = p.random_plate_colour(self.rng)
        plate = p.random_plate(self.rng, colour)
        record_id = f"{self.device.id}02{now.astimezone(p.CHINA_TZ):%Y%m%d%H%M%S}{self.seq:05d}02{self.seq % 100000:05d}"
        shot = f"{now.astimezone(p.CHINA_TZ):%Y%m%d%H%M%S}"
        vehicle = {
            "MotorVehicleID": record_id[:48], "InfoKind": 1, "SourceID": record_id[:41],
            "DeviceID": self.device.id, "HasPlate": "1", "PlateClass": "02",
            "PlateColor": GAT1400_COLOUR.get(colour.value, "99"), "PlateNo": plate,
            "PassTime": shot, "LaneNo": 1, "VehicleColor": "A",
            "PlateReliability": str(self.rng.randint(80, 99)),
            "SubImageList": {"SubImageInfoObject": [
                {"ImageID": record_id[:41], "Type": "01", "FileFormat": "Jpeg", "ShotTime": shot,
                 "Data": base64.b64encode(picture(ascii_plate(plate), self.seq)).decode()},
            ]},
        }  # fmt: skip
        body = {"MotorVehicleListObject": {"MotorVehicleObject": [vehicle]}}
        answer = await self._post("/VIID/MotorVehicles", json=body, headers=self._headers())
        if answer is not None and answer.status_code == 401:
            self.registered = False


def _multipart(parts: list[tuple[str, str, bytes]], boundary: str) -> bytes:
    out = io.BytesIO()
    for name, content_type, data in parts:
        filename = f'; filename="{name}"' if content_type.startswith("image/") else ""
        out.write(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"{filename}\r\n'.encode()
        )
        out.write(f"Content-Type: {content_type}\r\nContent-Length: {len(data)}\r\n\r\n".encode())
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue()


class IsapiDevice(PushDevice):
    @property
    def path(self) -> str:
        return f"/isapi/events/{self.device.id}"

    async def _push(self, parts: list[tuple[str, str, bytes]]) -> None:
        boundary = "MIME_boundary"
        await self._post(
            self.path, content=_multipart(parts, boundary),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )  # fmt: skip


class AcsDevice(IsapiDevice):
    """A Hikvision access controller: card and face results with the capture picture."""

    async def beat(self, now: datetime) -> None:
        body = {
            "eventType": "heartBeat",
            "dateTime": now.astimezone(p.CHINA_TZ).isoformat(timespec="seconds"),
        }
        await self._post(self.path, json=body)

    async def act(self, now: datetime) -> None:
        self.seq += 1
        minor = self.rng.choices([1, 75, 6, 9], weights=[6, 6, 1, 1])[0]
        event = {
            "ipAddress": "10.0.3.21", "dateTime": now.astimezone(p.CHINA_TZ).isoformat(timespec="seconds"),
            "activePostCount": 1, "eventType": "AccessControllerEvent", "eventState": "active",
            "eventDescription": "Access Controller Event",
            "AccessControllerEvent": {"majorEventType": 5, "subEventType": minor,
                                      "cardNo": p.random_card(self.rng), "doorNo": 1,
                                      "cardReaderNo": 1, "serialNo": self.seq},
        }  # fmt: skip
        await self._push([
            ("event_log", "application/json", json.dumps(event).encode()),
            ("Picture", "image/jpeg", picture(f"DOOR {self.seq}", self.seq)),
        ])  # fmt: skip


class AnprCamera(IsapiDevice):
    """A Hikvision ANPR camera: ``anpr.xml`` with plate and scene pictures."""

    def _alert(self, now: datetime, event_type: str, state: str, inner: str = "") -> bytes:
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<EventNotificationAlert version="2.0" xmlns="http://www.isapi.org/ver20/XMLSchema">'
            f"<ipAddress>10.0.5.21</ipAddress><channelID>1</channelID>"
            f"<dateTime>{now.astimezone(p.CHINA_TZ).isoformat(timespec='milliseconds')}</dateTime>"
            f"<eventType>{event_type}</eventType><eventState>{state}</eventState>{inner}"
            "</EventNotificationAlert>"
        ).encode()

    async def beat(self, now: datetime) -> None:
        await self._post(self.path, content=self._alert(now, "videoloss", "inactive"),
                         headers={"Content-Type": "application/xml"})  # fmt: skip

    async def act(self, now: datetime) -> None:
        self.seq += 1
        colour = p.random_plate_colour(self.rng)
        plate = p.random_plate(self.rng, colour)
        direction = self.rng.choice(["forward", "reverse"])
        colour_name = colour.value if colour is not PlateColour.UNKNOWN else "unknown"
        inner = (
            f"<ANPR><licensePlate>{plate}</licensePlate><line>1</line><direction>{direction}</direction>"
            f"<confidenceLevel>{self.rng.randint(80, 99)}</confidenceLevel><plateColor>{colour_name}</plateColor>"
            "<vehicleType>vehicle</vehicleType></ANPR>"
            f"<UUID>{self.rng.getrandbits(128):032x}</UUID><picNum>2</picNum>"
        )
        await self._push([
            ("anpr.xml", "text/xml", self._alert(now, "ANPR", "active", inner)),
            ("licensePlatePicture.jpg", "image/jpeg", picture(ascii_plate(plate), self.seq, (160, 60))),
            ("detectionPicture.jpg", "image/jpeg", picture(f"LANE {direction}", self.seq + 1)),
        ])  # fmt: skip


KINDS: dict[str, type[PushDevice]] = {
    "gat1400": Gat1400Camera,
    "hikvision-acs": AcsDevice,
    "hikvision-anpr": AnprCamera,
}


PROTOCOLS = {
    "gat1400": frozenset({"gat1400"}),
    "isapi": frozenset({"hikvision-acs", "hikvision-anpr"}),
    "http-push": frozenset(KINDS),
}


def push_devices(site: SiteConfig, protocol: str = "http-push") -> list[DeviceConfig]:
    """The devices of ``site`` this simulator plays (of one protocol, or all)."""
    return [d for d in site.devices if d.profile in PROTOCOLS[protocol]]


async def run_push_devices(
    site: SiteConfig,
    base_url: str,
    password: str,
    *,
    rate: float = 1.0,
    seed: int = 1,
    stop: asyncio.Event,
    duration: float | None = None,
    clock: Callable[[], datetime] | None = None,
    protocol: str = "http-push",
    transport: httpx.AsyncBaseTransport | None = None,
) -> PushStats:
    """Play every push device of ``site`` against the gateway at ``base_url`` until ``stop``
    (or ``duration`` seconds); ``transport`` for tests (in-process ASGI). Each device beats every ``heartbeat_s / max(rate, 1)`` seconds
    and sends an ordinary event about every ``30 / rate`` seconds."""
    now = clock or utcnow
    rng = random.Random(seed)
    stats = PushStats()
    speed = max(rate, 1.0)
    loop = asyncio.get_running_loop()
    deadline = None if duration is None else loop.time() + duration
    devices: list[tuple[PushDevice, httpx.AsyncClient, float]] = []
    for config in push_devices(site, protocol):
        client = httpx.AsyncClient(
            base_url=base_url,
            auth=httpx.DigestAuth(config.id, password),
            timeout=10,
            trust_env=False,
            transport=transport,
        )
        device = KINDS[config.profile or ""](config, client, random.Random(rng.random()), stats)
        devices.append((device, client, (config.heartbeat_s or 60) / speed))

    async def play(device: PushDevice, beat_every: float) -> None:
        next_beat = loop.time()
        next_act = loop.time() + rng.expovariate(rate / 30)
        while not stop.is_set() and (deadline is None or loop.time() < deadline):
            if loop.time() >= next_beat:
                await device.beat(now())
                next_beat = loop.time() + beat_every
            if loop.time() >= next_act:
                await device.act(now())
                next_act = loop.time() + device.rng.expovariate(rate / 30)
            wait = min(next_beat, next_act) - loop.time()
            if deadline is not None:
                wait = min(wait, deadline - loop.time())
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)

    async def gateway_up() -> None:
        """Wait until the gateway answers HTTP at all (the demo starts it alongside)."""
        async with httpx.AsyncClient(
            base_url=base_url, timeout=2, trust_env=False, transport=transport
        ) as probe:
            while not stop.is_set():
                try:
                    await probe.get("/")
                    return
                except httpx.HTTPError:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.5)

    try:
        await gateway_up()
        await asyncio.gather(*(play(d, every) for d, _, every in devices))
    finally:
        for _, client, _ in devices:
            await client.aclose()
    return stats
