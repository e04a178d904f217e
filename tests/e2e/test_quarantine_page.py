"""The quarantine page for the administrator and integrators (/console/quarantine): filter by
reason and device, the raw payload, "test with a profile", and the topic watch, in a real
browser against the demo gateway (screenshots in test-artifacts/e2e/)."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.ingest.reasons import Reason
from tests.e2e.conftest import WALL, shot
from tests.e2e.test_language_and_idle import ENUM_NAMES, SCAN

pytestmark = pytest.mark.slow
NAMES = sorted({*ENUM_NAMES, *(r.value for r in Reason)})


def publish(api: httpx.Client, messages: list[tuple[str, bytes]]) -> None:
    """To the demo gateway's broker (its address from /api/health), QoS 1, acknowledged."""
    broker = api.get("/api/health").json()["broker"]
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                         client_id=f"e2e-pub-{time.monotonic_ns()}")  # fmt: skip
    client.connect(broker["host"], broker["port"])
    client.loop_start()
    try:
        for topic, payload in messages:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.loop_stop()
        client.disconnect()


def test_quarantine_page_and_topic_watch(login: Any, api: httpx.Client) -> None:
    door = json.dumps({"v": 1, "seq": 1, "ts": "2026-05-12T10:00:00+08:00", "kind": "access",
                       "type": "access_granted", "attrs": {"door": "zz"}}).encode()  # fmt: skip
    publish(api, [("lianfang/demo-compound/door-zz9/event", door)])
    page = login("p-admin", WALL)
    page.goto("/console/quarantine")
    page.wait_for_selector("#q-rows tr[data-reason=unknown_device]")
    # filter by reason and device
    page.select_option("#q-reason", "unknown_device")
    page.fill("#q-filter input[name=device_id]", "door-zz9")
    page.click("#q-filter button[type=submit]")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#q-rows tr[data-record]')]"
        ".every(r => r.dataset.reason === 'unknown_device')"
    )
    assert "未登记的设备" in page.inner_text("#q-rows")
    page.click("#q-rows tr[data-record]")
    raw = page.wait_for_selector("[data-testid=q-raw]")
    assert '"door": "zz"' in raw.inner_text()
    assert "null" not in page.inner_text("[data-testid=q-detail]")
    # test with the profile taking the topic: still an unknown device, said in Chinese
    page.click("[data-testid=q-test]")
    verdict = page.wait_for_selector("[data-testid=q-trial] [data-testid=verdict]")
    assert verdict.get_attribute("data-reason") == "unknown_device"
    assert "仍会被隔离" in verdict.inner_text() and "未登记的设备" in verdict.inner_text()
    shot(page, "quarantine")

    # the topic watch: a payload on a topic no profile subscribes to shows up, with that said
    page.fill("#w-form input[name=filter]", "acme/#")
    page.click("[data-testid=w-start]")
    page.wait_for_selector("[data-testid=w-state][data-state=watching]", timeout=10000)
    publish(api, [("acme/gw-7/alarm", b'{"alarm": "smoke"}')])
    item = page.wait_for_selector("[data-testid=w-seen] li[data-topic='acme/gw-7/alarm']")
    assert item.get_attribute("data-reason") == "no_profile"
    assert "没有设备档案订阅此主题" in item.inner_text()
    found = page.evaluate(SCAN, NAMES)
    assert found == []
    shot(page, "topic-watch")
    page.click("[data-testid=w-stop]")
    page.wait_for_selector("[data-testid=w-state][data-state=ended]")
    assert page.request.get("/api/watches").json() == []  # stopped: forgotten at once

    # the page is not for the police desk
    desk = login("p-desk", WALL)
    assert desk.goto("/console/quarantine").status == 403
