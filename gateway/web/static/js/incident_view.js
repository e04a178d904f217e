// One incident: six-stage progress, details, actions for the user's role, timeline,
// evidence, notifications with their delivery state, audit entries.
import {
  ME, act, actionLabel, actorLabel, api, catLabel, channelLabel, fmtTime, h, picture, roleLabel, sevBadge, stageBar, t,
  timeline, title, uploadPhoto,
} from "./common.js";

const WORK = ["acknowledge", "accept", "feedback", "verify", "reject", "comment", "attach"];
export const ROLE_ACTIONS = {
  administrator: ["acknowledge", "dispatch", "accept", "feedback", "verify", "reject", "evaluate", "false_alarm", "cancel", "reopen", "comment", "attach"],
  command_operator: ["acknowledge", "dispatch", "evaluate", "false_alarm", "cancel", "reopen", "comment"],
  police_desk: ["acknowledge", "dispatch", "false_alarm", "comment"],
  community_police: ["acknowledge", "dispatch", "accept", "feedback", "false_alarm", "comment", "attach"],
  grid_head: [...WORK, "dispatch", "evaluate", "false_alarm"],
  grid_worker: WORK,
  station_grid_worker: WORK,
  grid_instructor: ["evaluate", "comment"],
  grid_supervising_leader: ["evaluate", "comment"],
  grid_convener: ["evaluate", "comment"],
  liaison_instructor: ["comment"],
  property_manager: ["acknowledge", "comment", "attach"],
  resident: [],
};

export function myActions(inc) {
  const mine = new Set(ME.roles.flatMap((r) => ROLE_ACTIONS[r] || []));
  return (inc.allowed || []).filter((a) => mine.has(a));
}

function actionPanel(inc, onDone) {
  const actions = myActions(inc);
  if (!actions.length) return null;
  const note = h("textarea", { name: "note", rows: 2, placeholder: t("note.placeholder"), "data-testid": "note" });
  const staff = inc.context?.staff || [];
  const assignee = h(
    "select",
    { name: "assignee", "data-testid": "assignee" },
    staff.map((p) => h("option", { value: p.id }, `${p.name}（${roleLabel(p.role)}）`)),
  );
  const photo = h("input", { type: "file", accept: "image/*", capture: "environment", "data-testid": "photo" });
  const score = h("select", { name: "score" }, [5, 4, 3, 2, 1].map((s) => h("option", { value: s }, s)));
  const msg = h("p", { class: "msg", "aria-live": "polite" });
  const run = async (action) => {
    msg.textContent = "";
    try {
      if (action === "attach") {
        const file = photo.files[0];
        if (!file) throw new Error(t("grid.photo"));
        await uploadPhoto(inc.id, file, note.value);
      } else {
        const extra = { note: note.value };
        if (action === "dispatch") extra.assignees = [assignee.value];
        if (action === "evaluate") extra.score = Number(score.value);
        // photos chosen before feedback go with it
        if (action === "feedback" && photo.files[0]) {
          const row = await uploadPhoto(inc.id, photo.files[0], note.value);
          extra.attachments = [row.id];
        }
        await act(inc.id, action, extra);
      }
      note.value = "";
      photo.value = "";
      onDone?.();
    } catch (err) {
      msg.textContent = `${t("error")}: ${err.message}`;
      msg.className = "msg err";
    }
  };
  return h(
    "section",
    { class: "actions", "data-testid": "actions" },
    h("h3", {}, t("inc.actions")),
    note,
    actions.includes("dispatch") && staff.length ? h("label", {}, t("assignee"), assignee) : null,
    actions.includes("attach") || actions.includes("feedback") ? h("label", { class: "photo" }, t("grid.photo"), photo) : null,
    actions.includes("evaluate") ? h("label", {}, t("act.evaluate"), score) : null,
    h(
      "div",
      { class: "buttons" },
      actions.map((a) =>
        h("button", { type: "button", class: `act-${a}`, "data-action": a, onclick: () => run(a) }, t(`act.${a}`)),
      ),
    ),
    msg,
  );
}

export function renderIncident(root, inc, { onChange, compact = false } = {}) {
  const names = inc.context?.names || {};
  const ctx = inc.context || {};
  // thumbnails say "loading…" (or "unavailable") until the picture is there
  const thumb = (href, alt, testid) =>
    h("a", { href, target: "_blank", class: "thumb" }, picture(alt, href, { testid }).el);
  const att = (inc.attachments || []).map((a) =>
    thumb(`/api/incidents/${inc.id}/attachments/${a.id}`, a.filename, "attachment"),
  );
  const ev = (inc.evidence || []).map((e) => thumb(e.image_url, e.camera_id, "evidence"));
  const deliveries = h(
    "table",
    { class: "grid-table small", "data-testid": "deliveries" },
    h("thead", {}, h("tr", {}, ["dlv.receiver", "dlv.recipient", "dlv.channel", "dlv.status", "dlv.ack"].map((c) => h("th", {}, t(c))))),
    h(
      "tbody",
      {},
      (inc.deliveries || []).map((d) =>
        h(
          "tr",
          { class: `st-${d.status}` },
          h("td", {}, d.receiver),
          h("td", {}, d.recipient_name || d.recipient_id),
          h("td", { "data-channel": d.channel }, channelLabel(d.channel)),
          h("td", {}, t(`status.${d.status}`)),
          h("td", {}, d.acked_at ? `✔ ${names[d.acked_by] || d.acked_by || ""}` : d.ack_required ? "…" : ""),
        ),
      ),
    ),
  );
  // The audit log's own rows for callers with audit:read; else the people's timeline steps.
  const audit = inc.audit
    ? inc.audit.map((a) => ({ at: a.at, actor: a.actor, role: a.role, action: a.action, note: a.status ?? "" }))
    : (inc.timeline || []).filter((e) => e.actor !== "system");
  const parts = [
    h(
      "header",
      { class: "inc-head" },
      sevBadge(inc.severity),
      h("h1", {}, title(inc)),
      h("span", { class: "muted" }, `#${inc.id} · ${catLabel(inc.category)} · ${fmtTime(inc.opened_at, true)}`),
    ),
    stageBar(inc.stage),
    h(
      "dl",
      { class: "facts" },
      ctx.address ? [h("dt", {}, t("desk.address")), h("dd", { "data-testid": "address" }, ctx.address)] : null,
      ctx.cell_name ? [h("dt", {}, t("inc.cell")), h("dd", {}, ctx.cell_name)] : null,
      inc.description ? [h("dt", {}, t("inc.note")), h("dd", {}, inc.description)] : null,
      inc.assignees?.length ? [h("dt", {}, t("assignee")), h("dd", {}, inc.assignees.map((a) => names[a] || a).join("、"))] : null,
    ),
    actionPanel(inc, onChange),
    h("section", {}, h("h3", {}, t("inc.timeline")), timeline(inc.timeline || [], names)),
    att.length || ev.length ? h("section", {}, h("h3", {}, t("inc.evidence")), h("div", { class: "thumbs" }, att, ev)) : null,
    compact ? null : h("section", {}, h("h3", {}, t("inc.deliveries")), deliveries),
    compact
      ? null
      : h(
          "section",
          {},
          h("h3", {}, t("inc.audit")),
          h(
            "table",
            { class: "grid-table small", "data-testid": "audit", "data-source": inc.audit ? "audit-log" : "timeline" },
            h(
              "tbody",
              {},
              audit.map((e) =>
                h(
                  "tr",
                  {},
                  h("td", {}, fmtTime(e.at, true)),
                  h("td", {}, actorLabel(e.actor, names)),
                  h("td", {}, e.role ? roleLabel(e.role) : ""),
                  // the audit log's own rows name the call (POST /api/…); timeline steps an action
                  h("td", {}, inc.audit ? e.action : actionLabel(e.action)),
                  h("td", {}, e.note),
                ),
              ),
            ),
          ),
        ),
  ];
  // replaceChildren would turn null into the text "null"
  root.replaceChildren(...parts.filter(Boolean));
}

export async function loadIncident(id) {
  return api(`/api/web/incidents/${id}`);
}
