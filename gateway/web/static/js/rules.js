// Rules and routing (administrator): state, last firing, enable/disable; routing tester.
import {
  I18N, LANG, api, catLabel, channelLabel, emptyRow, fmtTime, h, roleLabel, seconds, t,
} from "./common.js";

const rows = document.getElementById("rule-rows");
async function load() {
  const { rules } = await api("/api/rules");
  if (!rules.length) {
    rows.replaceChildren(emptyRow("rules.none", 5));
    return;
  }
  rows.replaceChildren(
    ...rules.map((r) =>
      h(
        "tr",
        { "data-rule": r.id, "data-category": r.category, class: r.enabled ? "" : "off" },
        // what the rule is for, in the page's language; its id (for files and the API) as code
        h(
          "td",
          {},
          h("b", {}, LANG === "zh" ? r.description_zh : r.description),
          h("br"),
          h("small", { class: "muted" }, `${catLabel(r.category)} · `, h("code", { class: "id" }, r.id)),
        ),
        h("td", {}, r.enabled ? t("rules.enabled") : t("rules.disabled"), r.active_signals ? ` · ${r.active_signals}` : ""),
        h("td", {}, r.severity),
        h("td", {}, fmtTime(r.last_fired_at, true), r.fired ? ` (${r.fired})` : ""),
        h(
          "td",
          {},
          h(
            "button",
            {
              class: "small",
              type: "button",
              "data-toggle": r.id,
              onclick: async () => {
                await api(`/api/rules/${encodeURIComponent(r.id)}/${r.enabled ? "disable" : "enable"}`, { method: "POST" });
                load();
              },
            },
            r.enabled ? t("rules.disable") : t("rules.enable"),
          ),
        ),
      ),
    ),
  );
}

// Why a receiver reaches nobody here, in the page's language (the reason's values: a role
// is shown by its name).
function nobody(u) {
  const values = { ...u.values, role: u.values.role ? roleLabel(u.values.role) : undefined };
  const key = `routing.why.${u.code}`;
  return h(
    "li",
    { "data-receiver": u.receiver, "data-why": u.code },
    h("b", {}, u.receiver),
    ` (${roleLabel(u.target)}): `,
    key in I18N ? t(key, values) : u.reason,
  );
}

const form = document.getElementById("routes-form");
form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = Object.fromEntries([...new FormData(form)].filter(([, v]) => v !== ""));
  const out = document.getElementById("routes-out");
  try {
    const r = await api("/api/web/routes-test", { method: "POST", body });
    const where = r.location;
    const parts = [
      h("p", {}, h("b", {}, `${t("routing.routes")}: `), r.routes.join(", ") || "—"),
      h(
        "p",
        {},
        h("b", {}, `${t("routing.where")}: `),
        `${t("routing.cell")} ${where.cell || "—"} · ${t("routing.beats")} ${where.beats.join(", ") || "—"}`,
      ),
      r.deliveries.length
        ? h(
            "table",
            { class: "grid-table small" },
            h("thead", {}, h("tr", {}, ["dlv.receiver", "dlv.recipient", "dlv.channel", "routing.ack", "dlv.wait"].map((c) => h("th", {}, t(c))))),
            h(
              "tbody",
              {},
              r.deliveries.map((d) =>
                h(
                  "tr",
                  { "data-channel": d.channel },
                  h("td", {}, d.receiver),
                  h("td", {}, `${d.name} (${d.recipient})`),
                  h("td", {}, channelLabel(d.channel)),
                  h("td", {}, d.ack ? "✔" : ""),
                  h("td", {}, seconds(d.group_wait_s)),
                ),
              ),
            ),
          )
        : h("p", { class: "err" }, t("routing.none")),
      r.unresolved.length
        ? h("div", { class: "nobody" }, h("h3", {}, t("routing.nobody")), h("ul", { class: "list", "data-testid": "routes-nobody" }, r.unresolved.map(nobody)))
        : null,
    ];
    out.replaceChildren(...parts.filter(Boolean)); // null would become the text "null"
  } catch (err) {
    out.replaceChildren(h("p", { class: "err" }, err.message));
  }
});
await load();
