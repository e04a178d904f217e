// Command centre, the district's data pool (docs/datapool.md): counts per compound over the
// last 7 days with open incidents, and traces of a plate, a card or person number (sent in a
// POST body, hashed by the gateway, never in a URL) or a device's day. Pages with next_cursor.
import { api, fmtTime, h, t, typeLabel } from "./common.js";

const KINDS = ["access", "gate", "perimeter", "alarm"];
const ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "Asia/Shanghai"; // the day is the viewer's
const section = document.getElementById("district");

function isoDaysAgo(days) {
  return new Date(Date.now() - days * 86400000).toISOString();
}

// -- cockpit ------------------------------------------------------------------------------
const cockpitBody = document.querySelector("#cockpit tbody");
const cockpitMore = document.getElementById("cockpit-more");
let openBySite = {};
let cockpitCursor = null;

async function openIncidents() {
  openBySite = {};
  let cursor = null;
  do {
    const page = await api(`/api/district/incidents/open?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
    page.items.forEach((i) => (openBySite[i.site ?? ""] = i.open));
    cursor = page.next_cursor;
  } while (cursor);
}

async function cockpit(more = false) {
  const since = isoDaysAgo(7);
  const query = `since=${encodeURIComponent(since)}&bucket=day&limit=50`;
  const page = await api(`/api/district/counts?${query}${more && cockpitCursor ? `&cursor=${encodeURIComponent(cockpitCursor)}` : ""}`);
  if (!more) {
    await openIncidents().catch(() => {}); // without incidents:read the column stays empty
    cockpitBody.replaceChildren();
    document.getElementById("cockpit-period").textContent = `${fmtTime(page.since, true)} – ${fmtTime(page.until, true)}`;
  }
  cockpitBody.append(
    ...page.items.map((s) =>
      h("tr", { "data-site": s.site }, h("td", {}, s.site), h("td", {}, s.total), ...KINDS.map((k) => h("td", {}, s.by_kind[k] || 0)), h("td", {}, openBySite[s.site] ?? 0)),
    ),
  );
  cockpitCursor = page.next_cursor;
  cockpitMore.hidden = !cockpitCursor;
}
cockpitMore.addEventListener("click", () => cockpit(true));

// -- traces -------------------------------------------------------------------------------
const form = document.getElementById("trace-form");
const what = document.getElementById("trace-what");
const key = document.getElementById("trace-key");
const day = document.getElementById("trace-day");
const traceBody = document.querySelector("#trace tbody");
const traceMore = document.getElementById("trace-more");
const traceError = document.getElementById("trace-error");
let next = null; // () => Promise of the next page, or null
let asked = null; // what the form held when searched: the cursor belongs to it

what.addEventListener("change", () => {
  day.hidden = what.value !== "device";
  day.required = what.value === "device";
  if (!day.value) day.value = new Date().toLocaleDateString("sv-SE"); // YYYY-MM-DD, local
});

function detail(e) {
  const a = e.attributes || {};
  return [a.plate, a.card_masked, a.door, a.direction, a.household, a.label].filter(Boolean).join(" · ");
}

function show(page, fetchMore) {
  traceBody.append(
    ...page.items.map((e) =>
      h("tr", {}, h("td", {}, fmtTime(e.occurred_at, true)), h("td", {}, e.site), h("td", {}, e.device_id), h("td", {}, typeLabel(e.type)), h("td", {}, detail(e))),
    ),
  );
  if (!traceBody.children.length) traceBody.append(h("tr", {}, h("td", { colspan: 5, class: "muted" }, t("district.none"))));
  next = page.next_cursor ? () => fetchMore(page.next_cursor) : null;
  traceMore.hidden = !next;
}

function query(cursor) {
  const { kind, value, since, date } = asked;
  const c = cursor ? `&cursor=${encodeURIComponent(cursor)}` : "";
  switch (kind) {
    case "plate":
      return api(`/api/district/traces/plate?plate=${encodeURIComponent(value)}&since=${encodeURIComponent(since)}${c}`);
    case "device":
      return api(`/api/district/devices/${encodeURIComponent(value)}/day?day=${date}&tz=${encodeURIComponent(ZONE)}${c}`);
    default: // card or person number: in the body, never in a URL
      return api("/api/district/traces/person", { method: "POST", body: { [kind]: value, since, cursor: cursor || undefined } });
  }
}

async function run(cursor) {
  traceError.textContent = "";
  try {
    show(await query(cursor), run);
  } catch (err) {
    traceError.textContent = err.message;
  }
}

form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  asked = { kind: what.value, value: key.value.trim(), since: isoDaysAgo(30), date: day.value };
  traceBody.replaceChildren();
  run(null);
});
traceMore.addEventListener("click", () => next && next());

cockpit().catch(() => {
  section.hidden = true; // no events:read: the district pool is not this role's
});
