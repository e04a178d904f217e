"""The Chinese console speaks Chinese (no enum names on the desk, command centre and devices
pages; dates by locale), and idle screens say what they are doing: stored events at once,
"connecting…" on video, "taking a snapshot…" on the desk, the payload tester set for its
example, site-plan labels clear of markers. Screenshots in test-artifacts/e2e/."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from gateway.events import DeviceKind, EventType
from gateway.grid.model import Role
from gateway.incidents.categories import IncidentCategory, Source
from gateway.incidents.lifecycle import Action, Stage
from tests.e2e.conftest import WALL, shot

pytestmark = pytest.mark.slow

ENUMS = (DeviceKind, EventType, Stage, IncidentCategory, Role, Source, Action)
ENUM_NAMES = sorted({m.value for enum in ENUMS for m in enum})

# Every visible text node (and the options of selects) outside data shown as data (a pasted
# payload, JSON): the words in it that are an enum's value.
SCAN = """(names) => {
  const skip = "script, style, textarea, pre, code, title, [data-raw]";
  const found = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const el = walker.currentNode.parentElement;
    if (!el || el.closest(skip)) continue;
    if (!el.closest("select") && !el.checkVisibility()) continue;
    for (const word of walker.currentNode.textContent.match(/[A-Za-z][A-Za-z0-9_-]*/g) || []) {
      if (names.includes(word)) {
        const where = el.closest("[id], [data-testid]");
        found.push(`${word} (in #${where ? where.id || where.dataset.testid : el.tagName})`);
      }
    }
  }
  return found;
}"""


def enum_names_shown(page: Any) -> list[str]:
    return list(page.evaluate(SCAN, ENUM_NAMES))


def panic(api: httpx.Client, household: str) -> int:
    """A P1 panic at ``household`` (the command centre files it for the resident)."""
    r = api.post(
        "/api/incidents",
        json={"category": "panic", "severity": "P1", "title_zh": "一键报警（测试）",
              "household": household, "location": {"address": household}},
    )  # fmt: skip
    r.raise_for_status()
    return int(r.json()["id"])


def test_chinese_pages_show_no_enum_names(login: Any, api: httpx.Client) -> None:
    incident = panic(api, "2-1-201")
    desk = login("p-desk", WALL)
    desk.wait_for_selector(f"#alarms [data-incident='{incident}']")
    desk.click(f"#alarms [data-incident='{incident}']")
    desk.wait_for_selector("#current [data-testid=timeline] li")
    desk.wait_for_selector("#current select[name=assignee] option", state="attached")
    assert enum_names_shown(desk) == []
    assert "（网格员）" in desk.inner_text("#current select[name=assignee]")
    shot(desk, "lang-desk-zh")

    command = login("p-command", WALL)
    command.wait_for_selector("#events li[data-type]")
    command.wait_for_selector("#open-list li a")
    command.wait_for_selector("#siteplan svg")
    assert enum_names_shown(command) == []
    shot(command, "lang-command-zh")

    devices = login("p-property", WALL)
    devices.goto("/console/devices")
    devices.wait_for_selector("tr[data-device='door-b1u1']")
    devices.wait_for_selector("#profile-select option", state="attached")
    devices.click("#payload-form button[type=submit]")
    devices.wait_for_selector("#payload-summary li[data-type=access_granted]")
    assert enum_names_shown(devices) == []
    assert "准许通行" in devices.inner_text("#payload-summary")
    shot(devices, "lang-devices-zh")


def test_dates_are_written_for_the_reader(login: Any) -> None:
    """12/04 reads as two different days in the two languages: the month is in words."""
    zh = login("p-property", WALL)
    zh.goto("/console/devices")
    zh.wait_for_selector("tr[data-device='door-b1u1']")
    seen = zh.inner_text("tr[data-device='door-b1u1'] td:nth-child(5)")
    assert re.fullmatch(r"\d{1,2}月\d{1,2}日 \d\d:\d\d:\d\d", seen), seen
    en = login("p-property", WALL, lang="en")
    en.goto("/console/devices")
    en.wait_for_selector("tr[data-device='door-b1u1']")
    seen = en.inner_text("tr[data-device='door-b1u1'] td:nth-child(5)")
    assert re.fullmatch(r"\d{1,2} [A-Z][a-z]{2},? \d\d:\d\d:\d\d", seen), seen
    assert en.inner_text("tr[data-device='door-b1u1'] td:nth-child(2)") == "Door access"


def test_command_centre_opens_with_stored_events_and_says_what_it_waits_for(login: Any) -> None:
    """Live pushes cut and video never answering: the page still shows the stored events at
    once, and each tile says it is connecting (then that it failed), never a black box."""
    page = login("p-command", WALL)
    page.context.route("**/api/events/stream*", lambda route: route.abort())
    held: list[Any] = []
    page.context.route("**/api/live/*/offer", lambda route: held.append(route))  # never answered
    page.goto("/console/command")
    page.wait_for_selector("#events li[data-event-id]", timeout=5000)
    assert page.locator("#events li[data-event-id]").count() > 1  # stored, not pushed
    tiles = page.locator("#tiles [data-testid=tile]")
    tiles.first.wait_for()
    assert tiles.first.get_attribute("data-state") == "connecting"
    assert tiles.first.locator("[data-testid=tile-state]").inner_text() == "视频连接中…"
    shot(page, "idle-command-connecting")
    for route in held:
        route.fulfill(status=503, json={"detail": "camera offline"})
    page.wait_for_selector("#tiles [data-testid=tile][data-state=failed]")
    failed = page.locator("#tiles [data-testid=tile][data-state=failed] [data-testid=tile-state]")
    assert failed.first.inner_text() == "视频无法连接"


def test_empty_and_loading_lists_say_so(login: Any) -> None:
    page = login("p-command", WALL)
    page.context.route("**/api/events/stream*", lambda route: route.abort())
    listing: list[Any] = []
    page.context.route("**/api/events?*", lambda route: listing.append(route))
    page.goto("/console/command")
    page.wait_for_selector("#events .empty")
    assert page.inner_text("#events") == "加载中…"
    while not listing:  # the route handler runs while the page waits
        page.wait_for_timeout(50)
    listing[0].fulfill(json={"items": [], "next_cursor": None})
    page.wait_for_selector("#events [data-empty='cmd.events_none']")
    assert page.inner_text("#events") == "暂无设备事件"


def test_desk_snapshot_says_it_is_being_taken(login: Any, api: httpx.Client) -> None:
    incident = panic(api, "3-1-301")
    desk = login("p-desk", WALL)
    held: list[Any] = []
    desk.context.route("**/api/web/incidents/*/snapshot", lambda route: held.append(route))
    desk.goto("/console/desk")
    desk.click(f"#alarms [data-incident='{incident}']")
    pic = desk.wait_for_selector("#current [data-testid=snapshot-picture]")
    assert pic.get_attribute("data-state") == "loading"
    assert pic.inner_text() == "正在抓拍…"
    shot(desk, "idle-desk-snapshot")
    for route in held:
        route.continue_()
    desk.wait_for_selector("#current [data-testid=snapshot-picture][data-state=loaded]")


def test_payload_tester_is_set_for_its_example(login: Any) -> None:
    page = login("p-property", WALL)
    page.goto("/console/devices")
    page.wait_for_selector("#profile-select option", state="attached")
    assert page.eval_on_selector("#profile-select", "s => s.value") == "lianfang"
    page.click("#payload-form button[type=submit]")
    page.wait_for_selector("#payload-summary.ok li[data-type=access_granted]")


def test_site_plan_labels_are_clear_of_markers(login: Any) -> None:
    page = login("p-command", WALL)
    page.wait_for_selector("#siteplan svg .dev")
    overlaps = page.evaluate(
        """() => {
      const plan = document.querySelector('#siteplan svg');
      const boxes = (sel) => [...plan.querySelectorAll(sel)].map((e) => [e, e.getBoundingClientRect()]);
      const hit = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
      const out = [];
      const markers = boxes('.dev circle, .dev path');
      for (const [label, l] of boxes('text')) {
        for (const [m, r] of markers) {
          if (hit(l, r)) out.push(`${label.textContent} × ${m.closest('.dev').dataset.device}`);
        }
      }
      for (let i = 0; i < markers.length; i++)
        for (let j = i + 1; j < markers.length; j++)
          if (hit(markers[i][1], markers[j][1]))
            out.push(`${markers[i][0].closest('.dev').dataset.device} × ${markers[j][0].closest('.dev').dataset.device}`);
      return out;
    }"""
    )
    assert overlaps == []


def test_rules_and_routing_tester_in_chinese(login: Any) -> None:
    admin = login("p-admin", WALL)
    admin.goto("/console/rules")
    admin.wait_for_selector("tr[data-rule=panic_button]")
    assert "住户按下一键报警按钮" in admin.inner_text("tr[data-rule=panic_button]")
    # a property route without the compound: the tester says what is missing, in Chinese
    admin.select_option("#routes-form select[name=category]", "access")
    admin.fill("#routes-form input[name=site]", "")
    admin.fill("#routes-form input[name=cell]", "shifan-01")
    admin.click("#routes-form button[type=submit]")
    why = admin.wait_for_selector("[data-testid=routes-nobody] li[data-why=needs_site]")
    assert "需要指定小区" in why.inner_text() and "物业经理" in why.inner_text()
    out = admin.inner_text("#routes-out")
    assert "没有解析出接收人" in out and "null" not in out
    assert enum_names_shown(admin) == []
    shot(admin, "lang-rules-routing-zh")
