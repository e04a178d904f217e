// Quarantine (administrator, integrator): messages that did not become events, by reason and
// device, with their raw payload and "test with a profile"; and the topic watch: what
// arrives on a filter for a few minutes and which profile, if any, would take it.
import { api, emptyRow, fmtTime, h, kindLabel, t, typeLabel } from "./common.js";

const reasonLabel = (r) => t(`reason.${r}`);

// -- what a profile makes (or would make) of a message ----------------------------------------
function verdictView(v) {
  if (v.ok) {
    return h(
      "div",
      { class: "verdict ok", "data-testid": "verdict", "data-ok": "1" },
      h("p", {}, `✔ ${v.profile} · ${t("q.events", { n: v.events.length })}`),
      h("ul", { class: "list" }, v.events.map((e) => h("li", { "data-type": e.type }, h("b", {}, typeLabel(e.type)), ` · ${kindLabel(e.kind)} · ${e.device_id}`))),
    );
  }
  return h(
    "div",
    { class: "verdict err", "data-testid": "verdict", "data-reason": v.reason },
    h("p", {}, v.profile ? `✘ ${v.profile} · ${t("q.would_quarantine")}: ${reasonLabel(v.reason)}` : `✘ ${t("q.no_profile")}`),
    v.detail && v.profile ? h("p", { class: "muted" }, v.detail) : null,
    v.panic ? h("p", { class: "warn" }, t("q.panic_note")) : null,
  );
}

// -- the quarantine -------------------------------------------------------------------------
const rows = document.getElementById("q-rows");
const detail = document.getElementById("q-detail");
const more = document.getElementById("q-more");
const filter = document.getElementById("q-filter");
let cursor = null;
let profiles = [];

async function stats() {
  const s = await api("/api/quarantine/stats");
  const box = document.getElementById("q-stats");
  const counted = Object.entries(s.received_by_reason).filter(([, n]) => n > 0);
  box.replaceChildren(
    h("span", {}, `${t("q.received")} ${s.received_total} · ${t("q.stored")} ${s.total}`),
    ...counted.map(([r, n]) =>
      h("button", { type: "button", class: "small chip", "data-reason": r, onclick: () => pick(r) }, `${reasonLabel(r)} ${n}`),
    ),
  );
  document.getElementById("q-reason").replaceChildren(
    h("option", { value: "" }, t("q.all_reasons")),
    ...Object.keys(s.by_reason).map((r) => h("option", { value: r }, reasonLabel(r))),
  );
}

function pick(reason) {
  filter.reason.value = reason;
  load();
}

async function load(append = false) {
  const q = new URLSearchParams({ limit: "50" });
  if (filter.reason.value) q.set("reason", filter.reason.value);
  if (filter.device_id.value.trim()) q.set("device_id", filter.device_id.value.trim());
  if (append && cursor) q.set("cursor", cursor);
  const page = await api(`/api/quarantine?${q}`);
  cursor = page.next_cursor;
  more.hidden = !cursor;
  const made = page.items.map((r) =>
    h(
      "tr",
      { "data-record": r.id, "data-reason": r.reason, class: "pick", onclick: () => show(r.id) },
      h("td", {}, fmtTime(r.received_at, true)),
      h("td", {}, reasonLabel(r.reason)),
      h("td", {}, r.device_id || "—"),
      h("td", {}, h("code", {}, r.topic)),
      h("td", {}, r.size),
    ),
  );
  if (append) rows.append(...made);
  else rows.replaceChildren(...(made.length ? made : [emptyRow("q.none", 5)]));
}

async function show(id) {
  for (const tr of rows.querySelectorAll("tr.on")) tr.classList.remove("on");
  rows.querySelector(`tr[data-record='${id}']`)?.classList.add("on");
  const r = await api(`/api/quarantine/${id}`);
  const choose = h(
    "select",
    { name: "profile", "data-testid": "q-profile" },
    h("option", { value: "" }, t("q.profile_taking")),
    profiles.map((p) => h("option", { value: p.id }, p.id)),
  );
  const out = h("div", { "data-testid": "q-trial" });
  const test = async () => {
    out.replaceChildren(h("p", { class: "muted" }, t("loading")));
    const body = choose.value ? { profile: choose.value } : {};
    try {
      out.replaceChildren(verdictView(await api(`/api/quarantine/${id}/trial`, { method: "POST", body })));
    } catch (err) {
      out.replaceChildren(h("p", { class: "err" }, `${t("error")}: ${err.message}`));
    }
  };
  const parts = [
    h("h2", {}, `#${r.id} · ${reasonLabel(r.reason)}`),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, t("q.time")), h("dd", {}, fmtTime(r.received_at, true)),
      h("dt", {}, t("q.topic")), h("dd", {}, h("code", {}, r.topic)),
      h("dt", {}, t("q.device")), h("dd", {}, r.device_id || "—"),
      h("dt", {}, t("q.detail")), h("dd", { "data-testid": "q-why" }, r.detail || "—"),
    ),
    h("h3", {}, `${t("q.raw")} (${r.size} B)`),
    h("pre", { class: "out", "data-raw": "1", "data-testid": "q-raw" }, r.raw_text),
    r.raw_truncated ? h("p", { class: "warn" }, t("q.truncated")) : null,
    h("div", { class: "trial" }, choose, h("button", { type: "button", class: "small", "data-testid": "q-test", onclick: test }, t("q.test"))),
    out,
  ];
  detail.replaceChildren(...parts.filter(Boolean)); // null would become the text "null"
}

filter.addEventListener("submit", (ev) => {
  ev.preventDefault();
  load();
});
more.addEventListener("click", () => load(true));

// -- the topic watch ------------------------------------------------------------------------
const wform = document.getElementById("w-form");
const stopButton = document.getElementById("w-stop");
const state = document.getElementById("w-state");
const seenList = document.getElementById("w-seen");
let watch = null; // {id, count}
let poll = null;

function seenItem(m) {
  const v = m.verdict;
  return h(
    "li",
    { "data-topic": m.topic, "data-profile": v.profile || "", "data-reason": v.reason || "" },
    h("div", {}, h("time", {}, fmtTime(m.at)), " ", h("code", {}, m.topic), h("small", { class: "muted" }, ` ${m.size} B`)),
    verdictView(v),
    h("details", {}, h("summary", {}, t("q.raw")), h("pre", { class: "out", "data-raw": "1" }, m.payload)),
  );
}

function showState(w) {
  const key = `w.state.${w.state}`;
  const text = t(key, { until: fmtTime(w.ends_at) });
  const why = w.end_reason ? ` · ${w.end_reason.startsWith("broker") ? w.end_reason : t(`w.end.${w.end_reason}`)}` : "";
  state.textContent = `${w.filter} · ${text}${why} · ${w.count}/${w.max_messages}`;
  state.dataset.state = w.state;
  const running = w.state !== "ended";
  stopButton.hidden = !running;
  document.getElementById("w-start").disabled = running;
}

async function refresh() {
  if (!watch) return;
  try {
    const w = await api(`/api/watches/${watch.id}?since=${watch.count}`);
    if (w.messages.length) {
      seenList.querySelector(".empty")?.remove();
      seenList.prepend(...w.messages.map(seenItem).reverse());
    }
    watch.count = w.count;
    showState(w);
    if (w.state === "ended") clearInterval(poll);
  } catch (err) {
    clearInterval(poll);
    state.textContent = `${t("error")}: ${err.message}`;
  }
}

wform.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = {
    filter: wform.filter.value.trim(),
    duration_s: Number(wform.duration_s.value),
    max_messages: Number(wform.max_messages.value),
  };
  try {
    const w = await api("/api/watches", { method: "POST", body });
    watch = { id: w.id, count: 0 };
    seenList.replaceChildren(h("li", { class: "muted empty" }, t("w.none")));
    showState(w);
    clearInterval(poll);
    poll = setInterval(refresh, 1000);
  } catch (err) {
    state.textContent = `✘ ${err.message}`;
    state.dataset.state = "refused";
  }
});

stopButton.addEventListener("click", async () => {
  if (!watch) return;
  await refresh(); // keep what arrived until now on the page
  await api(`/api/watches/${watch.id}`, { method: "DELETE" }).catch(() => {});
  clearInterval(poll);
  state.textContent = `${t("w.state.ended")} · ${t("w.end.stopped")}`;
  state.dataset.state = "ended";
  stopButton.hidden = true;
  document.getElementById("w-start").disabled = false;
  watch = null;
});

profiles = await api("/api/profiles");
await Promise.all([stats(), load()]);
