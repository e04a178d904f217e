"""Helpers for the ONVIF tests: fast camera configs and a manager wired to lists."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import Any

from device_adapters.onvif import CameraConfig, OnvifCameraManager
from gateway.demo.camera_sim import SimCamera
from gateway.events import Event
from gateway.ingest.pipeline import QuarantineRecord

PASSWORD_ENV = "LIANFANG_TEST_CAMERA_PASSWORD"
os.environ.setdefault(PASSWORD_ENV, "sim-password")
os.environ.setdefault("LIANFANG_TEST_WRONG_PASSWORD", "not-the-password")


def fast_config(cam: SimCamera, **overrides: Any) -> CameraConfig:
    """Seconds-scale timings so renewals and silence happen within a test."""
    values: dict[str, Any] = {
        "id": cam.id,
        "site": "test-site",
        "host": "127.0.0.1",
        "port": cam.port,
        "username": cam.username,
        "password_env": PASSWORD_ENV,
        "subscription_s": 30,
        "renew_margin_s": 2,
        "pull_timeout_s": 0.3,
        "request_timeout_s": 1.0,
        "retry_min_s": 0.1,
        "retry_max_s": 0.5,
    }
    values.update(overrides)
    return CameraConfig(**values)


class Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.quarantined: list[QuarantineRecord] = []

    def emit(self, events: list[Event]) -> None:
        self.events.extend(events)

    def quarantine(self, record: QuarantineRecord) -> None:
        self.quarantined.append(record)

    def of(self, device_id: str, type_: str | None = None) -> list[Event]:
        return [
            e for e in self.events
            if e.device_id == device_id and (type_ is None or e.type.value == type_)
        ]  # fmt: skip

    def health(self, device_id: str) -> list[tuple[str, Any]]:
        return [
            (e.type.value, e.attributes.extra.get("reason"))
            for e in self.of(device_id)
            if e.type.value in ("online", "offline")
        ]


def manager(configs: list[CameraConfig], sink: Sink) -> OnvifCameraManager:
    return OnvifCameraManager(configs, sink.emit, sink.quarantine)


async def wait_until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Poll until true; fail (not a timing assertion: a generous upper bound) otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached")
        await asyncio.sleep(0.02)
