// Devices (property manager): list with online state, last seen, battery; add or edit a
// device (PUT /api/devices/{id}: stored and in use at once), or only check it and get its
// line for the site file; delete one the console added (DELETE /api/devices/{id}, after a
// confirmation; its stored events are kept); paste a payload and see the normalised event.
import { ApiError, api, emptyRow, fmtTime, h, kindLabel, t, typeLabel } from "./common.js";

const rows = document.getElementById("device-rows");
const form = document.getElementById("device-form");
let devices = [];

async function load() {
  devices = (await api("/api/devices?limit=1000")).items;
  if (!devices.length) {
    rows.replaceChildren(emptyRow("devices.none", 7));
    return;
  }
  rows.replaceChildren(
    ...devices.map((d) =>
      h(
        "tr",
        { "data-device": d.id },
        h("td", {}, d.id, h("br"), h("small", { class: "muted" }, d.name, d.source === "console" ? ` · ${t("devices.console")}` : "")),
        h("td", { "data-kind": d.kind }, kindLabel(d.kind)),
        h("td", {}, d.place || ""),
        h("td", { class: d.online ? "ok" : d.online === false ? "err" : "muted" }, d.online ? t("dev.online") : d.online === false ? t("dev.offline") : t("dev.unknown")),
        h("td", {}, fmtTime(d.last_seen_at, true)),
        h("td", {}, d.battery_pct == null ? "" : `${d.battery_pct}%`),
        h("td", {}, h("button", { class: "small", type: "button", onclick: () => edit(d) }, "✎")),
      ),
    ),
  );
}

function edit(d) {
  for (const k of ["site", "id", "kind", "name", "profile", "place", "zone", "household", "camera", "heartbeat_s"]) {
    if (form[k]) form[k].value = d[k] ?? "";
  }
  showDelete();
  form.scrollIntoView({ behavior: "smooth" });
}

// Only a device the console added can be deleted here (one of the site files answers 409
// with the reason: it is removed in its site file).
const del = document.getElementById("device-delete");
const idInput = form.querySelector("input[name=id]");
function showDelete() {
  const d = devices.find((x) => x.id === idInput.value.trim());
  del.hidden = !(d && d.source === "console");
}
idInput.addEventListener("input", showDelete);

const out = document.getElementById("device-out");

// The outcome of a save or delete; `marks` (saved / deleted: the device id) are what the
// browser tests read, and only the last action's mark stays.
function report(text, marks = null) {
  out.textContent = text;
  out.className = marks ? "out ok" : "out err";
  delete out.dataset.saved;
  delete out.dataset.deleted;
  Object.assign(out.dataset, marks ?? {});
}

function entry() {
  const body = Object.fromEntries(new FormData(form));
  if (body.heartbeat_s === "") delete body.heartbeat_s;
  else body.heartbeat_s = Number(body.heartbeat_s);
  return body;
}

// FastAPI's 422: [{loc: ["body", "place"], msg}] → "place: …" lines
function reasons(err) {
  const detail = err instanceof ApiError ? err.detail : null;
  if (Array.isArray(detail)) return detail.map((d) => `${(d.loc || []).filter((p) => p !== "body").join(".")}: ${d.msg}`);
  return [err.message];
}

form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const { id, ...body } = entry();
  try {
    const saved = await api(`/api/devices/${encodeURIComponent(id)}`, { method: "PUT", body });
    report(`✔ ${t(saved.action === "add" ? "devices.added" : "devices.edited")} (${saved.device.site} / ${saved.device.id})`, { saved: saved.device.id });
    await load();
    showDelete();
  } catch (err) {
    report(`✘ ${reasons(err).join("\n")}`);
  }
});

del.addEventListener("click", async () => {
  const id = idInput.value.trim();
  if (!id || !confirm(t("devices.delete_confirm").replace("{id}", id))) return;
  try {
    await api(`/api/devices/${encodeURIComponent(id)}`, { method: "DELETE" });
    report(`✔ ${t("devices.deleted")} (${id})`, { deleted: id });
    idInput.value = "";
    await load();
    showDelete();
  } catch (err) {
    report(`✘ ${reasons(err).join("\n")}`);
  }
});

document.getElementById("device-check").addEventListener("click", async () => {
  const res = await api("/api/web/device-check", { method: "POST", body: entry() });
  report(res.ok ? `✔ ${res.file}\n${res.yaml}` : `✘ ${res.errors.join("\n")}`, res.ok ? {} : null);
});

// The payload tester: what a profile makes of a pasted message — each event in words
// (kind, type, device, time), its JSON below for the details.
const pform = document.getElementById("payload-form");
const summary = document.getElementById("payload-summary");
const pre = document.getElementById("payload-out");
pform.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const out = await api("/api/web/profile-test", {
    method: "POST",
    body: { profile: pform.profile.value, topic: pform.topic.value, payload: pform.payload.value },
  });
  pre.hidden = !out.ok;
  pre.textContent = out.ok ? JSON.stringify(out.events, null, 2) : "";
  pre.className = "out ok";
  summary.className = out.ok ? "summary ok" : "summary err";
  summary.replaceChildren(
    ...(out.ok
      ? [
          h("p", {}, `✔ ${t("devices.events_made", { n: out.events.length })}`),
          h(
            "ul",
            { class: "list" },
            out.events.map((e) =>
              h(
                "li",
                { "data-type": e.type },
                h("b", {}, typeLabel(e.type)),
                ` · ${kindLabel(e.kind)} · ${e.device_id} · ${fmtTime(e.occurred_at, true)}`,
              ),
            ),
          ),
        ]
      : [h("p", {}, `✘ ${t("devices.no_event")}: ${out.error}`)]),
  );
});
const sites = await api("/api/web/sites");
document.getElementById("site-select").replaceChildren(...sites.map((s) => h("option", { value: s.id }, s.name || s.id)));
// The example in the form is a Lianfang JSON message: its profile is the one selected.
const EXAMPLE_PROFILE = "lianfang";
const profiles = await api("/api/web/profiles");
document.getElementById("profile-select").replaceChildren(
  ...profiles.map((p) => h("option", { value: p, selected: p === EXAMPLE_PROFILE }, p)),
);
document.getElementById("profile-list").replaceChildren(...profiles.map((p) => h("option", { value: p })));
await load();
