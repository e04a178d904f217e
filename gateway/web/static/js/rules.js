// Rules and routing (administrator): state, last firing, enable/disable; routing tester.
import { api, fmtTime, h, t } from "./common.js";

const rows = document.getElementById("rule-rows");
async function load() {
  const { rules } = await api("/api/rules");
  rows.replaceChildren(
    ...rules.map((r) =>
      h(
        "tr",
        { "data-rule": r.id, class: r.enabled ? "" : "off" },
        h("td", {}, h("b", {}, r.id), h("br"), h("small", { class: "muted" }, r.description)),
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

const form = document.getElementById("routes-form");
form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = Object.fromEntries([...new FormData(form)].filter(([, v]) => v !== ""));
  const out = document.getElementById("routes-out");
  try {
    const r = await api("/api/web/routes-test", { method: "POST", body });
    out.replaceChildren(
      h("p", {}, h("b", {}, "routes: "), r.routes.join(", ") || "—"),
      h("p", {}, h("b", {}, "cell: "), r.location.cell || "—", " · beats: ", r.location.beats.join(",") || "—"),
      h(
        "table",
        { class: "grid-table small" },
        h("thead", {}, h("tr", {}, ["receiver", "recipient", "channel", "ack", "wait"].map((c) => h("th", {}, c)))),
        h("tbody", {}, r.deliveries.map((d) => h("tr", {}, h("td", {}, d.receiver), h("td", {}, `${d.name} (${d.recipient})`), h("td", {}, d.channel), h("td", {}, d.ack ? "✔" : ""), h("td", {}, `${d.group_wait_s}s`)))),
      ),
    );
  } catch (err) {
    out.replaceChildren(h("p", { class: "err" }, err.message));
  }
});
await load();
