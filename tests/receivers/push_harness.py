"""A small running stack for the HTTP push receivers: SQLite, the batch writer, the bus, an
evidence store, the shipped profiles, and an app with only the receivers' routes."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import Engine, select

from device_adapters.registry import load_adapters
from gateway.bus import EventBus
from gateway.config.settings import IngestConfig
from gateway.config.sites import DeviceConfig, SiteConfig, SiteRegistry
from gateway.evidence.store import EvidenceStore
from gateway.ingest.ack_gate import AckGate
from gateway.receivers.httppush.intake import PushIntake, release_replies
from gateway.storage import tables
from gateway.storage.db import make_engine, migrate
from gateway.storage.writer import BatchWriter

ROOT = Path(__file__).resolve().parents[2]
SITE = "push-compound"
PASSWORD_ENV = "LIANFANG_TEST_PUSH_PASSWORD"
PASSWORD = "s3cret-device"
PLATE_CAMERA = "31010800001190000002"
FACE_CAMERA = "31010800001190000003"
OTHER_CAMERA = "31010800001190000009"  # registered, no password
ACS = "acs-north"
ANPR = "anpr-south"
PINNED = "anpr-nopass"
CLIENT = ("10.0.0.5", 50000)


def jpeg(size: int = 2000, seed: int = 0) -> bytes:
    """A small JPEG-looking blob (magic bytes, then filler): the store checks the magic."""
    return b"\xff\xd8\xff\xe0" + bytes((seed + i) % 251 for i in range(size)) + b"\xff\xd9"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def registry() -> SiteRegistry:
    env = {"password_env": PASSWORD_ENV}
    devices = [
        DeviceConfig(id=PLATE_CAMERA, kind="gate", profile="gat1400", **env),
        DeviceConfig(id=FACE_CAMERA, kind="access", profile="gat1400", **env),
        DeviceConfig(id=OTHER_CAMERA, kind="gate", profile="gat1400"),
        DeviceConfig(id=ACS, kind="access", profile="hikvision-acs", **env),
        DeviceConfig(id=ANPR, kind="gate", profile="hikvision-anpr", **env),
        DeviceConfig(id=PINNED, kind="gate", profile="hikvision-anpr"),
    ]
    return SiteRegistry([SiteConfig(id=SITE, name="推送测试小区", devices=devices)])


@dataclass
class Stack:
    engine: Engine
    writer: BatchWriter
    bus: EventBus
    store: EvidenceStore
    registry: SiteRegistry
    gate: AckGate

    def intake(self, receiver: str, **kw: Any) -> PushIntake:
        return PushIntake(
            receiver,
            load_adapters(ROOT / "config" / "profiles"),
            self.registry,
            IngestConfig(),
            publish=self.bus.publish_many,
            submit=self.writer.submit_many,
            evidence=self.store,
            gate=self.gate,
            **kw,
        )

    def events(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(tables.events))]

    def quarantine(self) -> list[dict[str, Any]]:
        self.writer.flush()
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(select(tables.quarantine))]


@contextmanager
def stack(tmp: Path, *, batch_size: int = 500, interval_s: float = 0.02) -> Iterator[Stack]:
    engine = make_engine(f"sqlite:///{tmp / 'push.db'}")
    migrate(engine)
    writer = BatchWriter(engine, batch_size=batch_size, interval_s=interval_s)
    writer.start()
    bus = EventBus()
    store = EvidenceStore(tmp / "evidence")
    try:
        yield Stack(engine, writer, bus, store, registry(), AckGate(release_replies))
    finally:
        writer.stop()
        engine.dispose()


def client(app: FastAPI, address: tuple[str, int] = CLIENT, **kw: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=address), base_url="http://gw", **kw
    )


def multipart(
    parts: list[tuple[str, str, bytes]], boundary: str = "MIME_boundary"
) -> tuple[bytes, str]:
    """A multipart/form-data body as Hikvision devices write it: (name, content type, data)."""
    out = io.BytesIO()
    for name, content_type, data in parts:
        filename = f'; filename="{name}"' if content_type.startswith("image/") else ""
        out.write(f"--{boundary}\r\n".encode())
        out.write(f'Content-Disposition: form-data; name="{name}"{filename}\r\n'.encode())
        out.write(f"Content-Type: {content_type}\r\nContent-Length: {len(data)}\r\n\r\n".encode())
        out.write(data + b"\r\n")
    out.write(f"--{boundary}--\r\n".encode())
    return out.getvalue(), f"multipart/form-data; boundary={boundary}"
