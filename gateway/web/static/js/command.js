// Command centre (大屏): live events, open incidents by severity, today / month figures,
// community ranking, the site plan with live device states, live video tiles.
import {
  api, emptyItem, emptyRow, events, fmtTime, h, kindLabel, seconds, sevBadge, stageLabel, subscribe, t, title,
  typeLabel, videoTile,
} from "./common.js";

const pct = (v) => (v === null || v === undefined ? "—" : `${Math.round(v * 100)}%`);

function figures(el, s) {
  el.replaceChildren(
    ...[
      [t("stat.total"), s.total],
      [t("stat.closed"), (s.by_stage.verified || 0) + (s.by_stage.evaluated || 0)],
      [t("stat.closing_rate"), pct(s.closing_rate)],
      [t("stat.in_cell"), pct(s.closed_in_cell_share)],
      [t("stat.ack_p50"), seconds(s.ack_p50_s)],
    ].map(([k, v]) => h("div", { class: "num" }, h("b", {}, v), h("small", {}, k))),
  );
}

async function stats() {
  const [today, month, ranking] = await Promise.all([
    api("/api/stats/summary?period=today"),
    api("/api/stats/summary?period=month"),
    api("/api/stats/ranking?by=community"),
  ]);
  figures(document.getElementById("today"), today);
  figures(document.getElementById("month"), month);
  const names = Object.fromEntries((await api("/api/grid/areas")).map((a) => [a.id, a.name]));
  document.querySelector("#ranking tbody").replaceChildren(
    ...(ranking.rows.length
      ? ranking.rows.map((r) =>
          h("tr", {}, h("td", {}, r.rank), h("td", {}, names[r.key] || r.key), h("td", {}, r.score.toFixed(1)), h("td", {}, pct(r.closing_rate))),
        )
      : [emptyRow("cmd.ranking_none", 4)]),
  );
}

async function openIncidents() {
  const { items } = await api("/api/incidents?stage=discovered,dispatched,handling,feedback&limit=500");
  const counts = { P1: 0, P2: 0, P3: 0, P4: 0 };
  items.forEach((i) => (counts[i.severity] += 1));
  document.getElementById("sev").replaceChildren(
    ...Object.entries(counts).map(([k, v]) => h("div", { class: `sev-box ${k}`, "data-sev": k }, h("b", {}, v), h("small", {}, k))),
  );
  const order = { P1: 1, P2: 2, P3: 3, P4: 4 };
  items.sort((a, b) => order[a.severity] - order[b.severity] || b.id - a.id);
  document.getElementById("open-list").replaceChildren(
    ...(items.length
      ? items.slice(0, 12).map((i) =>
          h("li", {}, h("a", { href: `/console/incidents/${i.id}` }, sevBadge(i.severity), " ", title(i), h("small", {}, ` ${stageLabel(i.stage)} ${fmtTime(i.opened_at)}`))),
        )
      : [emptyItem("cmd.open_none")]),
  );
}

// site plan and device states
const plan = document.getElementById("siteplan");
async function sitePlan() {
  const sites = await api("/api/web/sites");
  if (!sites.length) {
    plan.replaceChildren(h("p", { class: "muted empty" }, t("cmd.no_sites")));
    return;
  }
  const svg = await api(`/api/web/siteplan/${encodeURIComponent(sites[0].id)}.svg`);
  const doc = new DOMParser().parseFromString(svg, "image/svg+xml");
  plan.replaceChildren(document.importNode(doc.documentElement, true));
  await deviceStates();
}
async function deviceStates() {
  const { items } = await api("/api/devices?limit=1000");
  let on = 0;
  let off = 0;
  for (const d of items) {
    const el = plan.querySelector(`[data-device="${CSS.escape(d.id)}"]`);
    if (!el) continue;
    const state = d.online === true && !d.overdue ? "online" : d.online === false || d.overdue ? "offline" : "unknown";
    if (state === "online") on += 1;
    if (state === "offline") off += 1;
    el.classList.remove("online", "offline", "unknown");
    el.classList.add(state);
    el.querySelector("title").textContent = `${d.name || d.id} · ${t(`dev.${state}`)} · ${fmtTime(d.last_seen_at)}${d.battery_pct != null ? ` · ${d.battery_pct}%` : ""}`;
  }
  document.getElementById("plan-legend").replaceChildren(
    h("span", { class: "dot online" }), `${t("dev.online")} ${on} `,
    h("span", { class: "dot offline" }), `${t("dev.offline")} ${off}`,
  );
}
function pulse(deviceId) {
  const el = plan.querySelector(`[data-device="${CSS.escape(deviceId)}"]`);
  if (!el) return;
  el.classList.remove("pulse");
  void el.getBoundingClientRect();
  el.classList.add("pulse");
}

// live events: the newest stored ones first (the page does not open empty), then each one
// as it arrives; an event both stored and pushed is shown once.
const feed = document.getElementById("events");
const FEED_MAX = 40;
const shown = new Set();
// The rules' late tolerance (GET /api/rules; 30 s, the default, for roles that cannot read it).
let lateTolerance = 30;
api("/api/rules").then((r) => { lateTolerance = r.late_tolerance_s; }).catch(() => {});

function eventRow(e) {
  const late = e.arrival_delay_s > lateTolerance;
  return h(
    "li",
    {
      class: `ev ev-${e.kind}${late ? " late" : ""}`,
      "data-type": e.type,
      "data-kind": e.kind,
      "data-event-id": e.event_id,
      title: kindLabel(e.kind),
    },
    h("time", {}, fmtTime(e.occurred_at)),
    h("b", {}, typeLabel(e.type)),
    h("span", {}, e.device_id),
    late ? h("small", { class: "late-mark", title: t("event.late_title"), "data-testid": "late" }, t("event.late")) : null,
  );
}

function showEvent(e, { live }) {
  if (!e.device_id || shown.has(e.event_id)) return;
  shown.add(e.event_id);
  feed.querySelector(".empty")?.remove();
  if (live) {
    pulse(e.device_id);
    feed.prepend(eventRow(e));
  } else {
    feed.append(eventRow(e));
  }
  while (feed.children.length > FEED_MAX) {
    shown.delete(feed.lastChild.dataset.eventId);
    feed.lastChild.remove();
  }
}

let backfilled = false;
const early = []; // pushed while the stored ones were still loading
events((e) => (backfilled ? showEvent(e, { live: true }) : early.push(e)));
async function backfill() {
  try {
    const { items } = await api(`/api/events?limit=${FEED_MAX}`);
    for (const e of items) showEvent(e, { live: false }); // newest first
  } catch {
    /* a role without events:read sees the live ones only */
  }
  backfilled = true;
  for (const e of early.splice(0).sort((a, b) => (a.received_at < b.received_at ? -1 : 1))) {
    showEvent(e, { live: true });
  }
  if (!feed.querySelector("[data-event-id]")) feed.replaceChildren(emptyItem("cmd.events_none"));
}

// video tiles
async function tiles() {
  const cams = await api("/api/web/cameras");
  document.getElementById("tiles").replaceChildren(
    ...(cams.length ? cams.slice(0, 4).map(videoTile) : [h("p", { class: "muted empty" }, t("cmd.no_cameras"))]),
  );
}

let pending = null;
subscribe((item) => {
  if (item.type !== "incident") return;
  clearTimeout(pending);
  pending = setTimeout(() => {
    openIncidents();
    stats();
  }, 500);
});
await Promise.all([backfill(), stats(), openIncidents(), sitePlan(), tiles()]);
setInterval(deviceStates, 10000);
setInterval(stats, 60000);
