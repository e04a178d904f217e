"""The console in a real browser against a demo gateway: alarm desk, resident, grid worker,
scope, live video and the remaining pages (with screenshots in test-artifacts/e2e/)."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from gateway.privacy import mask_tail
from tests.e2e.conftest import PHONE, WALL, shot

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def demo_contact(household: str) -> dict[str, str]:
    """The demo grid's contact of a household (config/grid/households.csv)."""
    with (ROOT / "config" / "grid" / "households.csv").open(encoding="utf-8") as f:
        return next(row for row in csv.DictReader(f) if row["id"] == household)


def photo(tmp_path: Path) -> Path:
    img = np.zeros((240, 320, 3), np.uint8)
    cv2.rectangle(img, (60, 60), (260, 180), (0, 140, 255), -1)
    path = tmp_path / "hazard.jpg"
    path.write_bytes(cv2.imencode(".jpg", img)[1].tobytes())
    return path


def hold(page: Any, selector: str, ms: int) -> None:
    box = page.locator(selector).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.down()
    page.wait_for_timeout(ms)
    page.mouse.up()


def detail(api: httpx.Client, incident_id: int) -> dict[str, Any]:
    response = api.get(f"/api/incidents/{incident_id}")
    response.raise_for_status()
    return response.json()  # type: ignore[no-any-return]


def hazard(api: httpx.Client, household: str, text: str) -> int:
    """A hazard at ``household``, reported by staff (the command centre)."""
    response = api.post(
        "/api/incidents",
        json={"category": "hazard", "title_zh": text, "description": text,
              "household": household, "location": {"address": household}},
    )  # fmt: skip
    response.raise_for_status()
    return int(response.json()["id"])


def banner_state(page: Any) -> str:
    """``none`` when the alarm banner is not displayed, ``alarm`` when it shows an alarm,
    else its CSS display (an empty bar on screen)."""
    return str(
        page.eval_on_selector(
            "#banner",
            "b => getComputedStyle(b).display === 'none' ? 'none'"
            " : (b.dataset.incident ? 'alarm' : getComputedStyle(b).display)",
        )
    )


def test_resident_alarm_reaches_the_desk_and_is_acknowledged(login: Any, api: httpx.Client) -> None:
    desk = login("p-desk", WALL)
    desk.wait_for_selector("#alarms")
    # no alarm, no red: the banner takes no space (a bar always red teaches the desk to ignore it)
    assert banner_state(desk) in ("none", "alarm")
    resident = login("p-resident", PHONE)
    resident.wait_for_selector("#address:not(:empty)")

    # a short press does nothing; a hold opens the cancel window, which cancels
    hold(resident, "#sos", 300)
    resident.wait_for_timeout(200)
    assert not resident.locator("[data-testid=cancel]").count()
    hold(resident, "#sos", 2200)
    resident.click("[data-testid=cancel]")
    resident.wait_for_selector("[data-testid=cancelled]")

    hold(resident, "#sos", 2200)
    resident.wait_for_selector("[data-testid=cancel]")
    sent = resident.wait_for_selector("[data-testid=sent]", timeout=6000)
    t_sent = time.monotonic()
    incident_id = int(sent.get_attribute("data-incident"))
    shot(resident, "resident-alarm-sent")

    desk.wait_for_selector(f"#banner[data-incident='{incident_id}']", timeout=2000)
    latency = time.monotonic() - t_sent
    assert latency < 2.0, latency
    assert desk.locator("#banner").is_visible()
    red = desk.eval_on_selector("#banner", "b => getComputedStyle(b).backgroundColor")
    r, g, b = (int(c) for c in red[red.index("(") + 1 : red.index(")")].split(",")[:3])
    assert r - max(g, b) > 80, red  # red: it flashes between #ff4d4f and #7a0f12
    desk.wait_for_selector("#current [data-testid=address]", timeout=3000)
    assert "1号楼1单元101室" in desk.inner_text("[data-testid=desk-address]")
    assert desk.locator("[data-testid=clock]").inner_text() != "—"
    desk.wait_for_selector("[data-testid=snapshot] img[src*='/api/evidence/']", timeout=8000)
    # the picture itself loads for the desk (evidence:read), not only its address
    desk.wait_for_function(
        "() => { const i = document.querySelector('[data-testid=snapshot] img');"
        " return i && i.complete && i.naturalWidth > 0; }",
        timeout=8000,
    )
    shot(desk, "desk-incoming-alarm")

    # before the click the desk sees the household's contact with the stored masked number
    contact = demo_contact("1-1-101")
    masked = mask_tail(contact["contact_phone"], 4)
    shown = desk.wait_for_selector("#current [data-testid=phone-masked]", timeout=5000)
    assert shown.inner_text() == masked
    before = desk.inner_text("#current [data-testid=contacts]")
    assert contact["contact_name"] in before and contact["contact_relation"] in before
    assert contact["contact_phone"] not in before
    assert not desk.locator("#current [data-testid=phone]").count()  # not before the click
    shot(desk, "desk-phones-masked")

    # the desk (pii:read) reveals the household's contact numbers: in full, recorded
    desk.click("#current [data-testid=show-phones]")
    desk.wait_for_selector("#current [data-testid=phones-recorded]", timeout=5000)
    assert not desk.locator("#current [data-testid=phones-masked]").count()  # replaced
    number = desk.locator("#current [data-testid=phone]")
    assert number.inner_text() == contact["contact_phone"]
    assert number.get_attribute("href") == f"tel:{contact['contact_phone']}"
    phones = desk.inner_text("#current [data-testid=phones]")
    assert contact["contact_name"] in phones and contact["contact_relation"] in phones
    assert "已记录查看" in desk.inner_text("#current [data-testid=phones-recorded]")
    shot(desk, "desk-phones-revealed")

    desk.fill("#current [data-testid=note]", "已联系住户，民警出发")
    desk.click("#current button[data-action=acknowledge]")
    resident.wait_for_selector("[data-testid=acked-by].acked", timeout=5000)
    desk.wait_for_function(
        f"() => document.querySelector('#banner').dataset.incident !== '{incident_id}'"
        " || getComputedStyle(document.querySelector('#banner')).display === 'none'",
        timeout=5000,
    )  # acknowledged: the banner goes (unless another alarm has arrived meanwhile)
    assert "太平派出所值班台" in resident.inner_text("[data-testid=acked-by]")
    # taken: the desk is no longer offered 确认接警 (a repeat would record nothing)
    desk.wait_for_function(
        "() => document.querySelector('#current button[data-action=dispatch]')"
        " && !document.querySelector('#current button[data-action=acknowledge]')",
        timeout=5000,
    )
    shot(resident, "resident-acknowledged")

    desk.select_option("#current [data-testid=assignee]", "p-worker-1")
    desk.click("#current button[data-action=dispatch]")
    desk.wait_for_selector("#current [data-stage=dispatched]", timeout=5000)

    desk.goto(f"/console/incidents/{incident_id}")
    desk.wait_for_selector("[data-testid=timeline] li[data-action=dispatch]")
    actions = [li.get_attribute("data-action") for li in desk.query_selector_all(
        "[data-testid=timeline] li")]  # fmt: skip
    for step in ("open", "notify", "acknowledge", "dispatch"):
        assert step in actions, actions
    assert desk.locator("[data-testid=deliveries] tbody tr").count() >= 3
    shot(desk, "incident-detail")
    stored = detail(api, incident_id)
    assert stored["acked_at"] is not None and stored["stage"] == "dispatched"

    # the administrator (audit:read) sees the audit log's own rows for the incident
    admin = login("p-admin", WALL)
    admin.goto(f"/console/incidents/{incident_id}")
    audit = admin.wait_for_selector("[data-testid=audit][data-source=audit-log]")
    admin.wait_for_selector(
        "[data-testid=audit] td:has-text('/api/incidents/{incident_id}/actions')"
    )
    assert "太平派出所值班台" in audit.inner_text()  # the desk, by its grid person's name
    shot(admin, "incident-detail-admin-audit")

    # the desk's reveal is an audit row (whose numbers, by whom), without the number
    rows: list[dict[str, Any]] = []
    while page := admin.request.get(
        "/api/audit", params={"after": rows[-1]["id"] if rows else 0, "limit": 1000}
    ).json():
        rows += page
    reveals = [
        r for r in rows
        if r["action"] == "GET /api/grid/households/{household_id}/phones"
        and r["target"] == "/api/grid/households/1-1-101/phones"
    ]  # fmt: skip
    assert [(r["role"], r["status"]) for r in reveals] == [("police_desk", 200)], reveals
    assert reveals[0]["after"]["revealed"] == {"household": "1-1-101", "revealed": 1}
    assert contact["contact_phone"] not in json.dumps(reveals)

    # the administrator (no pii:read) gets no button on the desk, but says why; the masked
    # contact (grid:read, as the households listing shows it) is there
    admin.goto("/console/desk")
    admin.click(f"#alarms [data-incident='{incident_id}']")
    admin.wait_for_selector(
        f"#current:has(.inc-head:has-text('#{incident_id} ')) [data-testid=phones-denied]"
    )
    assert admin.locator("#current [data-testid=show-phones]").count() == 0
    assert admin.inner_text("#current [data-testid=phone-masked]") == masked
    assert contact["contact_phone"] not in admin.inner_text("#current [data-testid=contacts]")
    # the property manager sees the incident (their compound) but holds no grid:read: no
    # contacts at all, as the households listing would refuse them
    context = login("p-property", WALL).request.get(f"/api/web/incidents/{incident_id}").json()
    assert "contacts" not in context["context"] and context["context"]["household"] == "1-1-101"


def test_grid_worker_handles_feedback_verify(login: Any, api: httpx.Client, tmp_path: Path) -> None:
    incident_id = hazard(api, "1-2-203", "2单元楼道堆放杂物，堵塞消防通道")
    r = api.post(f"/api/incidents/{incident_id}/actions",
                 json={"action": "dispatch", "assignees": ["p-worker-1"]})  # fmt: skip
    assert r.status_code == 200, r.text
    worker = login("p-worker-1", PHONE)
    card = f"[data-incident='{incident_id}']"
    worker.click(f"{card} button.row")
    worker.click(f"{card} button[data-action=accept]")
    worker.wait_for_selector(f"{card}[data-stage=handling] button[data-action=feedback]")
    worker.fill(f"{card} [data-testid=note]", "已清理杂物，通道畅通")
    worker.set_input_files(f"{card} [data-testid=photo]", str(photo(tmp_path)))
    worker.click(f"{card} button[data-action=feedback]")
    worker.wait_for_selector(f"{card}[data-stage=feedback] button[data-action=verify]")
    worker.wait_for_selector(f"{card} [data-testid=attachment]")
    shot(worker, "grid-worker-feedback")
    worker.click(f"{card} button[data-action=verify]")
    worker.wait_for_selector(f"{card}[data-stage=verified]")
    worker.wait_for_selector(f"{card} [data-testid=timeline] li[data-action=verify]")
    shot(worker, "grid-worker-verified")
    stored = detail(api, incident_id)
    assert stored["stage"] == "verified"
    steps = [(e["action"], e["actor"]) for e in stored["timeline"]]
    for step in (("accept", "p-worker-1"), ("feedback", "p-worker-1"), ("verify", "p-worker-1")):
        assert step in steps, steps
    assert len(stored["attachments"]) == 1


def test_resident_files_a_hazard_report_with_a_photo(
    login: Any, api: httpx.Client, tmp_path: Path
) -> None:
    resident = login("p-resident", PHONE)
    resident.fill("#hazard textarea[name=text]", "3号楼东侧路灯不亮，夜间有安全隐患")
    resident.set_input_files("#hazard input[name=photo]", str(photo(tmp_path)))
    resident.click("#hazard button[type=submit]")
    state = resident.wait_for_selector("#hazard-state[data-incident]")
    incident_id = int(state.get_attribute("data-incident"))
    resident.wait_for_selector(f"[data-testid=reports] li[data-incident='{incident_id}']")
    shot(resident, "resident-hazard-report")
    stored = detail(api, incident_id)
    assert stored["source"] == "hazard" and stored["reporter"] == "p-resident"
    assert stored["cell"] == "shifan-01"
    assert [a["content_type"] for a in stored["attachments"]] == ["image/jpeg"]


def test_grid_worker_cannot_open_another_cells_incident(login: Any, api: httpx.Client) -> None:
    other = hazard(api, "4-1-101", "4号楼门口井盖松动")  # cell shifan-02
    mine = hazard(api, "1-1-502", "1号楼电动车楼道充电")  # cell shifan-01
    worker = login("p-worker-1", PHONE)  # shifan-01
    response = worker.goto(f"/console/incidents/{other}")
    assert response.status == 404  # like a missing id: other grids' ids cannot be probed
    assert worker.locator("[data-testid=message]").count() == 1
    shot(worker, "grid-worker-forbidden")
    assert worker.request.get(f"/api/web/incidents/{other}").status == 404
    assert worker.request.get(f"/api/web/incidents/{mine}").status == 200
    worker.goto("/console/grid")
    worker.wait_for_selector(f"[data-incident='{mine}']")
    assert worker.locator(f"[data-incident='{other}']").count() == 0
    assert worker.goto("/console/rules").status == 403


def test_command_centre_plays_live_video(login: Any) -> None:
    page = login("p-command", WALL)
    page.wait_for_selector("#siteplan svg [data-device='cam-north']")
    page.wait_for_function(
        "() => [...document.querySelectorAll('video[data-camera]')]"
        ".some(v => v.videoWidth > 0 && v.currentTime > 0.5)",
        timeout=20000,
    )
    t0 = page.evaluate("() => document.querySelector('video[data-camera]').currentTime")
    page.wait_for_timeout(700)
    t1 = page.evaluate("() => document.querySelector('video[data-camera]').currentTime")
    assert t1 > t0
    page.wait_for_selector("#siteplan svg .dev.online")
    page.wait_for_selector("#events li[data-event-id]", timeout=10000)
    shot(page, "command-centre")


def test_devices_rules_and_english(login: Any) -> None:
    page = login("p-property", WALL)
    page.goto("/console/devices")
    page.wait_for_selector("tr[data-device='door-b1u1']")
    page.wait_for_selector("#profile-select option[value=lianfang]", state="attached")
    page.click("#payload-form button[type=submit]")  # the example, with its profile
    page.wait_for_selector("#payload-out:not(:empty)")
    assert '"access_granted"' in page.inner_text("#payload-out")
    # add a device: a wrong place is refused with the reason, then it is stored and listed
    page.wait_for_selector("#site-select option[value=demo-compound]", state="attached")
    page.fill("#device-form input[name=id]", "door-b1u1-new")
    page.fill("#device-form input[name=name]", "1号楼1单元新门禁")
    page.fill("#device-form input[name=place]", "b9-door")
    page.click("[data-testid=device-save]")
    page.wait_for_selector("#device-out.err")
    assert "place: unknown place 'b9-door' in demo-compound" in page.inner_text("#device-out")
    page.fill("#device-form input[name=place]", "b1-u1-door")
    page.click("[data-testid=device-check]")  # check only: the line for the site file
    page.wait_for_selector("#device-out.ok")
    assert "config/sites/demo-compound.yaml" in page.inner_text("#device-out")
    page.click("[data-testid=device-save]")
    page.wait_for_selector("#device-out[data-saved='door-b1u1-new']")
    assert "✔ 已添加" in page.inner_text("#device-out")
    page.wait_for_selector("tr[data-device='door-b1u1-new']")
    stored = page.request.get("/api/devices/door-b1u1-new").json()
    assert stored["source"] == "console" and stored["place"] == "b1-u1-door", stored
    shot(page, "devices")
    # a device of the site file offers no delete button; the one the console added does
    page.click("tr[data-device='door-b1u1'] button")
    assert page.locator("[data-testid=device-delete]").is_hidden()
    page.click("tr[data-device='door-b1u1-new'] button")
    delete = page.locator("[data-testid=device-delete]")
    assert delete.is_visible() and delete.inner_text() == "删除设备"
    asked: list[str] = []

    def answer(accept: bool) -> Any:
        def on_dialog(dialog: Any) -> None:
            asked.append(dialog.message)
            if accept:
                dialog.accept()
            else:
                dialog.dismiss()

        return on_dialog

    page.once("dialog", answer(False))  # cancelled: nothing happens
    delete.click()
    page.wait_for_timeout(300)
    assert len(asked) == 1 and "door-b1u1-new" in asked[0] and "事件保留" in asked[0]
    assert page.request.get("/api/devices/door-b1u1-new").status == 200
    page.once("dialog", answer(True))
    delete.click()
    page.wait_for_selector("#device-out[data-deleted='door-b1u1-new']")
    page.wait_for_selector("tr[data-device='door-b1u1-new']", state="detached")
    assert "已删除" in page.inner_text("#device-out") and delete.is_hidden()
    assert page.request.get("/api/devices/door-b1u1-new").status == 404
    shot(page, "devices-deleted")
    assert page.goto("/console/rules").status == 403

    admin = login("p-admin", WALL, lang="en")
    admin.goto("/console/rules")
    admin.wait_for_selector("tr[data-rule]")
    assert "Rules" in admin.inner_text("h1")
    admin.select_option("#routes-form select[name=category]", "panic")
    admin.fill("#routes-form input[name=household]", "6-1-102")
    admin.click("#routes-form button[type=submit]")
    admin.wait_for_selector("#routes-out table")
    assert "police-desk" in admin.inner_text("#routes-out")
    shot(admin, "rules-routing-en")


def test_sign_out_ends_the_server_session(login: Any, gateway: str) -> None:
    """Sign-out is one navigation (POST /logout → 303 → /login): nothing of the old page (its
    polls, its live streams) can start a second one once the session has ended."""
    page = login("p-command", WALL)
    page.wait_for_selector("#tiles [data-testid=tile]")  # the page's own calls are running
    (session,) = [c["value"] for c in page.context.cookies() if c["name"] == "lianfang_session"]
    bearer = {"Authorization": f"Bearer {session}"}
    assert httpx.get(f"{gateway}/api/auth/me", headers=bearer).status_code == 200
    with page.expect_navigation(url="**/login") as signed_out:
        page.click("[data-testid=logout]")
    first = signed_out.value.request.redirected_from
    assert first is not None and first.method == "POST" and first.url.endswith("/logout")
    assert httpx.get(f"{gateway}/api/auth/me", headers=bearer).status_code == 401
    left = {c["name"] for c in page.context.cookies()} - {"lianfang_lang"}
    assert not {n for n in left if n.startswith("lianfang_")}, left
    # a call of the old page answered 401 now would not navigate again: the page is the
    # sign-in page, and opening a console page goes there too
    assert page.locator("#login").count() == 1
    shot(page, "login")
    assert page.goto("/console/command").url.endswith("/login")


def test_command_centre_district_pool(login: Any) -> None:
    """The district section: counts per compound, and a device's day found by the form."""
    page = login("p-command", WALL)
    page.wait_for_selector("#cockpit tbody tr[data-site='demo-compound']", timeout=15000)
    page.wait_for_function(
        "() => Number(document.querySelector(\"#cockpit tr[data-site='demo-compound'] td:nth-child(2)\").textContent) > 0",
        timeout=20000,
    )
    page.select_option("#trace-what", "device")
    page.fill("#trace-key", "gate-north")
    page.fill("#trace-day", page.evaluate("() => new Date().toLocaleDateString('sv-SE')"))
    page.click("#trace-form button[type=submit]")
    page.wait_for_selector("#trace tbody tr td:nth-child(3)", timeout=10000)
    assert page.locator("#trace tbody tr").first.locator("td").nth(2).text_content() == "gate-north"
    shot(page, "command-district")
