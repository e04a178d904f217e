// Police alarm desk: P1 and panic alarms arrive live with sound and a flashing banner.
import { api, beep, clock, emptyItem, fmtTime, h, picture, sevBadge, stageLabel, subscribe, t, title, videoTile } from "./common.js";
import { loadIncident, renderIncident } from "./incident_view.js";

const list = document.getElementById("alarms");
const current = document.getElementById("current");
const banner = document.getElementById("banner");
const alarms = new Map(); // id → incident
let selected = null;
let timer = null;
let video = null;
let revealed = null; // {incident, household, answer}: the numbers shown for the selected alarm

// The household's contacts: names, relations and masked numbers (138****5678, as stored)
// from the incident's context at once; the numbers in full on request only
// (GET /api/grid/households/{id}/phones: pii:read, one household, each reveal audited).
function contactsPanel(incId, ctx) {
  const box = h("div", { class: "contacts", "data-testid": "contacts", "data-household": ctx.household || "" });
  if (!ctx.household) {
    box.append("—");
    return box;
  }
  if (revealed && revealed.incident === incId && revealed.household === ctx.household) {
    showPhones(box, revealed.answer);
    return box;
  }
  if (ctx.contacts) box.append(maskedContacts(ctx.contacts));
  if (!ctx.may_reveal_phones) {
    box.append(h("p", { class: "muted", "data-testid": "phones-denied" }, t("desk.phones_denied")));
    return box;
  }
  if (ctx.contacts && !ctx.contacts.some((c) => c.phone_masked)) return box; // no number to reveal
  const msg = h("p", { class: "msg", "aria-live": "polite" });
  const button = h(
    "button",
    { type: "button", class: "small", "data-testid": "show-phones" },
    t("desk.show_phones"),
  );
  button.addEventListener("click", async () => {
    button.disabled = true;
    msg.textContent = "";
    try {
      const answer = await api(`/api/grid/households/${encodeURIComponent(ctx.household)}/phones`);
      if (selected === incId) revealed = { incident: incId, household: ctx.household, answer };
      showPhones(box, answer);
    } catch (err) {
      button.disabled = false;
      msg.textContent = err.status === 403 ? t("desk.phones_denied") : `${t("error")}: ${err.message}`;
      msg.className = "msg err";
    }
  });
  box.append(button, msg);
  return box;
}

function maskedContacts(contacts) {
  if (!contacts.length) return h("p", { class: "muted" }, t("desk.no_contacts"));
  return h(
    "ul",
    { class: "phones masked", "data-testid": "phones-masked" },
    contacts.map((c) =>
      h(
        "li",
        {},
        h("b", {}, c.name || "—"),
        c.relation ? h("span", { class: "muted" }, c.relation) : null,
        h("span", { class: "masked", "data-testid": "phone-masked", title: t("desk.phone_masked") }, c.phone_masked || "—"),
      ),
    ),
  );
}

function showPhones(box, answer) {
  const contacts = answer.contacts || [];
  box.replaceChildren(
    contacts.length
      ? h(
          "ul",
          { class: "phones", "data-testid": "phones" },
          contacts.map((c) =>
            h(
              "li",
              {},
              h("b", {}, c.name || "—"),
              c.relation ? h("span", { class: "muted" }, c.relation) : null,
              c.phone
                ? h("a", { href: `tel:${c.phone.replace(/[^0-9+]/g, "")}`, "data-testid": "phone" }, c.phone)
                : h("span", { class: "err", title: c.phone_error || "" }, `${c.phone_masked || "—"} · ${t("desk.phone_unavailable")}`),
            ),
          ),
        )
      : h("p", { class: "muted" }, t("desk.no_contacts")),
    h("p", { class: "recorded muted", "data-testid": "phones-recorded" }, t("desk.phones_recorded")),
  );
}

const isAlarm = (inc) => inc.severity === "P1" || inc.category === "panic";
const OPEN = new Set(["discovered", "dispatched", "handling", "feedback"]);

function drawList() {
  const items = [...alarms.values()].filter((i) => OPEN.has(i.stage)).sort((a, b) => b.id - a.id);
  list.replaceChildren(
    ...(items.length
      ? items.map((inc) =>
          h(
            "li",
            {
              class: `alarm ${inc.acked_at ? "acked" : "unacked"} ${inc.id === selected ? "on" : ""}`,
              "data-incident": inc.id,
              onclick: () => select(inc.id),
            },
            sevBadge(inc.severity),
            h("b", {}, title(inc)),
            h("small", {}, `${fmtTime(inc.opened_at)} · ${stageLabel(inc.stage)}`),
          ),
        )
      : [emptyItem("desk.none")]),
  );
}

function flash(inc) {
  banner.hidden = false;
  banner.replaceChildren(
    h("b", {}, `${t("desk.incoming")} #${inc.id}`),
    h("span", {}, title(inc)),
    h("span", {}, inc.context?.address || ""),
  );
  banner.dataset.incident = inc.id;
  banner.classList.add("flash");
  beep(4);
  banner.onclick = () => select(inc.id);
}

async function select(id) {
  if (id !== selected) revealed = null;
  selected = id;
  drawList();
  const inc = await loadIncident(id);
  alarms.set(id, inc);
  const ctx = inc.context || {};
  const clockEl = h("div", { class: "clock", "data-testid": "clock" });
  const snapBox = h("div", { class: "snap", "data-testid": "snapshot" });
  const body = h("div", { class: "inc-body" });
  const side = h(
    "aside",
    { class: "desk-side" },
    h("h3", {}, t("desk.clock")),
    clockEl,
    h("h3", {}, t("desk.address")),
    h("p", { class: "big", "data-testid": "desk-address" }, ctx.address || "—"),
    h("h3", {}, t("desk.neighbours")),
    h("p", { "data-testid": "neighbours" }, ctx.neighbours?.length ? ctx.neighbours.join("、") : "—"),
    h("h3", {}, t("desk.contacts")),
    contactsPanel(id, ctx),
    h("h3", {}, `${t("desk.camera")}: ${ctx.camera || "—"}`),
    snapBox,
  );
  current.replaceChildren(h("div", { class: "desk-detail" }, body, side));
  renderIncident(body, inc, { onChange: () => select(id), compact: true });
  clearInterval(timer);
  timer = clock(clockEl, ctx.ack_deadline, inc.acked_at);
  if (inc.acked_at) {
    banner.hidden = true;
    banner.classList.remove("flash");
  }
  if (ctx.camera) {
    const shot = inc.evidence?.[inc.evidence.length - 1];
    const pic = picture(t("desk.snapshot"), shot ? shot.image_url : "", { testid: "snapshot-picture" });
    snapBox.append(pic.el, h("button", { class: "small", onclick: () => snapshot(id, pic) }, t("desk.snapshot")));
    if (!shot) snapshot(id, pic);
    if (!video || video.dataset.camera !== ctx.camera) {
      video = videoTile(ctx.camera);
      video.dataset.camera = ctx.camera;
    }
    snapBox.append(video);
  }
}

// A new snapshot: "taking a snapshot…" until it is there, "unavailable" (with the reason
// in the tooltip) when the camera gave none.
async function snapshot(id, pic) {
  pic.set("", "desk.snapshot_taking");
  try {
    const s = await api(`/api/web/incidents/${id}/snapshot`, { method: "POST" });
    pic.set(s.image_url);
  } catch (err) {
    pic.fail(String(err.message));
  }
}

async function onIncident(id, created) {
  let inc;
  try {
    inc = await loadIncident(id);
  } catch {
    return; // outside my scope
  }
  if (!isAlarm(inc)) return;
  const isNew = !alarms.has(id);
  alarms.set(id, inc);
  drawList();
  if (isNew && created && OPEN.has(inc.stage)) {
    flash(inc);
    if (!selected || alarms.get(selected)?.acked_at) select(id);
  } else if (id === selected) {
    select(id);
  }
}

document.getElementById("sound").addEventListener("click", () => beep(1));
subscribe((item) => {
  if (item.type === "incident") onIncident(item.incident_id, item.created);
});
const first = await api("/api/web/incidents?open=1&alarms=1&limit=50");
for (const inc of first.items) alarms.set(inc.id, inc);
drawList();
const unacked = first.items.find((i) => !i.acked_at);
if (unacked) select(unacked.id);
