"""onvif-zeep-async, locked down: the configured host only, safe XML, bounded answers.

:class:`GuardedCamera` is ``onvif.ONVIFCamera`` with three changes:

* every SOAP service gets its own aiohttp session with our timeouts and :class:`HttpGuard`,
  and a zeep client with :data:`SAFE_SETTINGS` (no DTD, no entities, no huge trees);
* ``rewrite_url`` — which the library applies to XAddrs, subscription references and
  snapshot URIs — rewrites any foreign host to the configured one (unless allowed);
* snapshot requests go through the same guard.

:class:`OnvifClient` is what the manager and ``lianfang cameras probe`` use: log in (the
camera's clock offset is measured first, so digest login works on a skewed camera) and read
device information, services, profiles, stream and snapshot URIs.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from aiohttp import BasicAuth, ClientSession, ClientTimeout, DigestAuthMiddleware, TCPConnector
from onvif.client import (
    _WSDL_DIR_FILES,
    _WSDL_PATH,
    AsyncTransportProtocolErrorHandler,
    ONVIFCamera,
    ONVIFService,
    UsernameDigestTokenDtDiff,
    WsAddressingIfMissingPlugin,
    ZeepAsyncClient,
    _cached_document,
    _list_wsdl_dir,
    _resolve_active_prefix,
)
from onvif.util import normalize_url

from device_adapters.onvif.config import CameraConfig
from device_adapters.onvif.safety import SAFE_SETTINGS, HttpGuard, rewrite_advertised

log = logging.getLogger(__name__)


class SafeService(ONVIFService):  # type: ignore[misc]  # the library is untyped
    """One ONVIF service binding on a guarded session with safe zeep settings."""

    guard: HttpGuard
    timeout: ClientTimeout

    async def setup(self) -> None:  # replaces the library's session, transport and settings
        session: ClientSession = self._session  # type: ignore[has-type]
        await session.close()  # built by the library's __init__, never used
        self._connector = TCPConnector(ssl=False, limit=4, keepalive_timeout=4)
        self._session = ClientSession(
            connector=self._connector, timeout=self.timeout, middlewares=(self.guard,)
        )
        self.transport = AsyncTransportProtocolErrorHandler(
            session=self._session, verify_ssl=False, cache=None
        )
        wsse = UsernameDigestTokenDtDiff(
            self.user, self.passwd, dt_diff=self.dt_diff, use_digest=self.encrypt
        )
        self.document = await _cached_document(self.url)
        plugins = [WsAddressingIfMissingPlugin()]
        self.zeep_client_authless = ZeepAsyncClient(
            wsdl=self.document, transport=self.transport, settings=SAFE_SETTINGS, plugins=plugins
        )
        self.ws_client_authless = self.zeep_client_authless.create_service(
            self.binding_name, self.xaddr
        )
        client = ZeepAsyncClient(
            wsdl=self.document,
            wsse=wsse,
            transport=self.transport,
            settings=SAFE_SETTINGS,
            plugins=plugins,
        )
        self.zeep_client = client
        self.ws_client = client.create_service(self.binding_name, self.xaddr)
        name = self.binding_name
        namespace = name[name.find("{") + 1 : name.find("}")]
        prefix = _resolve_active_prefix(client.namespaces, namespace)
        self.create_type = lambda x: client.get_element(f"{prefix}:{x}")()


class GuardedCamera(ONVIFCamera):  # type: ignore[misc]  # the library is untyped
    def __init__(self, config: CameraConfig, password: str | None) -> None:
        host = config.address
        base = f"{config.scheme}://{host}" if config.scheme == "https" else host
        super().__init__(
            base, config.service_port, config.username, password,
            wsdl_dir=_WSDL_PATH, no_cache=True, adjust_time=True,
        )  # fmt: skip
        self.config = config
        self.guard = HttpGuard(
            None if config.allow_foreign_hosts else host, config.max_response_bytes
        )
        self.rewritten: list[tuple[str, str]] = []  # (advertised, used)

    def rewrite_url(self, url: str | None) -> str | None:
        new, changed = rewrite_advertised(
            url,
            self.config.address,
            self.config.service_port,
            allow_foreign=self.config.allow_foreign_hosts,
        )
        if changed and url is not None and new is not None:
            if not any(a == url for a, _ in self.rewritten):
                log.warning(
                    "camera %s advertised %s on a foreign host; using %s instead "
                    "(allow_foreign_hosts is off)", self.config.id, url, new,
                )  # fmt: skip
            self.rewritten.append((url, new))
            del self.rewritten[:-50]
        return new

    def _timeout(self, pull: bool) -> ClientTimeout:
        cfg = self.config
        read = cfg.request_timeout_s + (cfg.pull_timeout_s if pull else 0)
        return ClientTimeout(total=read + cfg.request_timeout_s, connect=cfg.request_timeout_s,
                             sock_read=read)  # fmt: skip

    async def create_onvif_service(
        self,
        name: str,
        port_type: str | None = None,
        read_timeout: int | None = None,
        write_timeout: int | None = None,
    ) -> ONVIFService:
        name = name.lower()
        binding_key = (name, port_type)
        if self.wsdl_dir not in _WSDL_DIR_FILES:
            _WSDL_DIR_FILES[self.wsdl_dir] = await asyncio.to_thread(_list_wsdl_dir, self.wsdl_dir)
        xaddr, wsdl_file, binding_name = self.get_definition(name, port_type)
        existing = self.services.get(binding_key)
        if existing is not None:
            if existing.xaddr == xaddr:
                return existing
            await existing.close()
            self.services.pop(binding_key)
        service = SafeService(
            xaddr, self.user, self.passwd, wsdl_file, self.encrypt,
            no_cache=True, dt_diff=self.dt_diff, binding_name=binding_name,
            binding_key=binding_key,
        )  # fmt: skip
        service.guard = self.guard
        service.timeout = self._timeout(pull=name == "pullpoint")
        await service.setup()
        self.services[binding_key] = service
        return service

    async def _try_snapshot_uri(
        self,
        uri: str,
        auth: BasicAuth | None = None,
        middlewares: tuple[DigestAuthMiddleware, ...] | None = None,
        timeout: float = 30,  # noqa: ASYNC109  # the library's signature
    ) -> aiohttp.ClientResponse:
        client: ClientSession = self._snapshot_client
        return await client.get(
            uri,
            auth=auth,
            middlewares=(self.guard, *(middlewares or ())),
            timeout=ClientTimeout(total=min(timeout, self.config.request_timeout_s * 2)),
            allow_redirects=False,
        )


@dataclass
class ProfileInfo:
    token: str
    name: str
    encoding: str | None = None
    width: int | None = None
    height: int | None = None
    stream_uri: str | None = None
    snapshot_uri: str | None = None


@dataclass
class DeviceReport:
    """What the camera says it is and supports (``lianfang cameras probe``)."""

    camera_id: str
    url: str
    clock_offset_s: float
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    serial: str | None = None
    services: dict[str, str] = field(default_factory=dict)  # namespace -> XAddr (as followed)
    capabilities: dict[str, Any] = field(default_factory=dict)
    pullpoint: bool | None = None
    profiles: list[ProfileInfo] = field(default_factory=list)
    rewritten: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if v is not None and not k.startswith("_")}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


class OnvifClient:
    """One camera session: ``connect`` then ask; ``close`` always."""

    def __init__(self, config: CameraConfig, password: str | None) -> None:
        self.config = config
        self.camera = GuardedCamera(config, password)

    @property
    def clock_offset(self) -> timedelta:
        """Camera clock minus gateway clock (zero until connected)."""
        return self.camera.dt_diff or timedelta(0)

    async def connect(self) -> None:
        """Measure the clock offset, log in, and learn the service addresses."""
        await self.camera.update_xaddrs()
        # update_xaddrs may not need auth (GetServices is often open); make sure login works.
        devicemgmt = await self.camera.create_devicemgmt_service()
        self.device_info = await devicemgmt.GetDeviceInformation()

    async def close(self) -> None:
        try:
            await self.camera.close()
        except Exception:  # closing must not mask the error that brought us here
            log.debug("closing camera %s failed", self.config.id, exc_info=True)

    async def report(self, *, media: bool = True) -> DeviceReport:
        """Device information, services, capabilities, profiles, stream and snapshot URIs."""
        cam = self.camera
        info = self.device_info
        report = DeviceReport(
            camera_id=self.config.id,
            url=f"{self.config.scheme}://{self.config.address}:{self.config.service_port}",
            clock_offset_s=round(self.clock_offset.total_seconds(), 3),
            manufacturer=getattr(info, "Manufacturer", None),
            model=getattr(info, "Model", None),
            firmware=getattr(info, "FirmwareVersion", None),
            serial=getattr(info, "SerialNumber", None),
            services=dict(cam.xaddrs),
        )
        try:
            caps = await cam.get_capabilities() or {}
            report.capabilities = {k: _plain(v) for k, v in caps.items() if v is not None}
            events = caps.get("Events") or {}
            report.pullpoint = bool(events.get("WSPullPointSupport")) if events else None
        except Exception as exc:
            report.errors.append(f"GetCapabilities: {exc}")
        if media:
            try:
                report.profiles = await self.profiles()
            except Exception as exc:
                report.errors.append(f"media: {exc}")
        report.rewritten = list(dict.fromkeys(cam.rewritten))
        return report

    async def profiles(self) -> list[ProfileInfo]:
        media = await self.camera.create_media_service()
        out: list[ProfileInfo] = []
        for profile in (await media.GetProfiles()) or []:
            token = str(profile.token)
            enc = getattr(profile, "VideoEncoderConfiguration", None)
            res = getattr(enc, "Resolution", None) if enc is not None else None
            item = ProfileInfo(
                token=token,
                name=str(getattr(profile, "Name", "") or ""),
                encoding=str(enc.Encoding) if enc is not None and enc.Encoding else None,
                width=int(res.Width) if res is not None else None,
                height=int(res.Height) if res is not None else None,
            )
            req = media.create_type("GetStreamUri")
            req.ProfileToken = token
            req.StreamSetup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
            try:
                uri = (await media.GetStreamUri(req)).Uri
                item.stream_uri, changed = rewrite_advertised(
                    normalize_url(uri), self.config.address, self.config.service_port,
                    allow_foreign=self.config.allow_foreign_hosts, keep_port=True,
                )  # fmt: skip
                if changed and item.stream_uri:
                    self.camera.rewritten.append((str(uri), item.stream_uri))
            except Exception as exc:
                log.debug("GetStreamUri failed for %s/%s: %s", self.config.id, token, exc)
            item.snapshot_uri = await self.camera.get_snapshot_uri(token)
            out.append(item)
        return out

    async def snapshot(self, profile_token: str) -> bytes | None:
        """One JPEG from the camera (through the same host pin and size cap)."""
        data: bytes | None = await self.camera.get_snapshot(profile_token)
        return data


def utcnow() -> datetime:
    return datetime.now(UTC)
