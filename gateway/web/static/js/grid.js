// Grid worker (phone): my incidents; accept, handle with notes and photos, feedback, verify.
import { api, emptyItem, fmtTime, h, sevBadge, stageLabel, subscribe, t, title } from "./common.js";
import { loadIncident, renderIncident } from "./incident_view.js";

const mine = document.getElementById("mine");
const cards = new Map(); // id → {li, row, detail}
let openId = null;

function card(inc) {
  let c = cards.get(inc.id);
  if (!c) {
    const row = h("button", { class: "row", type: "button", onclick: () => toggle(inc.id) });
    const detail = h("div", { class: "detail" });
    c = { li: h("li", { class: "inc-card", "data-incident": inc.id }, row, detail), row, detail };
    cards.set(inc.id, c);
  }
  c.li.dataset.stage = inc.stage;
  c.row.replaceChildren(
    sevBadge(inc.severity),
    h("b", {}, title(inc)),
    h("small", {}, `${stageLabel(inc.stage)} · ${fmtTime(inc.opened_at, true)}`),
  );
  c.li.classList.toggle("open", inc.id === openId);
  return c.li;
}

async function refreshList() {
  const { items } = await api("/api/web/incidents?limit=50");
  mine.replaceChildren(...(items.length ? items.map(card) : [emptyItem("grid.none")]));
}

async function show(id) {
  const c = cards.get(id);
  if (!c) return;
  renderIncident(c.detail, await loadIncident(id), { onChange: () => update(id), compact: true });
  c.detail.append(h("a", { href: `/console/incidents/${id}`, class: "more" }, t("inc.open")));
}

async function update(id) {
  await refreshList();
  if (id === openId) await show(id);
}

async function toggle(id) {
  if (openId !== null) cards.get(openId)?.detail.replaceChildren();
  openId = openId === id ? null : id;
  await refreshList();
  if (openId !== null) await show(openId);
}

let pending = null;
subscribe((item) => {
  if (item.type !== "incident") return;
  if (item.incident_id === openId) {
    const typing = cards.get(openId)?.detail.querySelector("textarea")?.value;
    if (!typing) show(openId);
  }
  clearTimeout(pending);
  pending = setTimeout(refreshList, 300);
});
await refreshList();
