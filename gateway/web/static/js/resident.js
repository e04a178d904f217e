// Resident (phone): press-and-hold alarm with a cancel window; 随手报; my reports.
import { ME, api, emptyItem, fmtTime, h, stageLabel, t, title, uploadPhoto } from "./common.js";

const HOLD_MS = 2000;
const CANCEL_MS = 3000;
const button = document.getElementById("sos");
const hint = document.getElementById("sos-hint");
const state = document.getElementById("sos-state");
let holdTimer = null;
let cancelTimer = null;
let poll = null;

const me = await api("/api/web/me");
document.getElementById("address").textContent = me.address || "";

function reset() {
  clearTimeout(holdTimer);
  button.classList.remove("holding");
  hint.textContent = t("res.hold");
}

function startHold(ev) {
  ev.preventDefault();
  if (cancelTimer || button.classList.contains("sent")) return;
  button.classList.add("holding");
  holdTimer = setTimeout(armed, HOLD_MS);
}

function armed() {
  button.classList.remove("holding");
  button.classList.add("armed");
  let left = CANCEL_MS / 1000;
  const cancel = h("button", { class: "cancel", type: "button", "data-testid": "cancel", onclick: abort }, `${t("res.cancel_window")} (${left})`);
  state.replaceChildren(cancel);
  const tick = setInterval(() => {
    left -= 1;
    cancel.textContent = `${t("res.cancel_window")} (${Math.max(left, 0)})`;
  }, 1000);
  cancelTimer = setTimeout(async () => {
    clearInterval(tick);
    cancelTimer = null;
    await send();
  }, CANCEL_MS);
  cancel.dataset.tick = tick;
}

function abort() {
  clearTimeout(cancelTimer);
  clearInterval(Number(state.querySelector(".cancel")?.dataset.tick));
  cancelTimer = null;
  button.classList.remove("armed");
  state.replaceChildren(h("p", { class: "muted", "data-testid": "cancelled" }, t("res.cancelled")));
}

async function send() {
  button.classList.remove("armed");
  try {
    const { id } = await api("/api/alarms", { method: "POST", body: { household: ME.household } });
    button.classList.add("sent");
    const who = h("p", { class: "who", "data-testid": "acked-by" }, t("res.waiting"));
    state.replaceChildren(h("p", { class: "sent", "data-testid": "sent", "data-incident": id }, t("res.sent")), who);
    const check = async () => {
      const s = await api(`/api/web/alarm/${id}`);
      if (s.acks.length) {
        who.textContent = t("res.acked_by") + s.acks.map((a) => `${a.name} ${fmtTime(a.at)}`).join("、");
        who.classList.add("acked");
      }
      if (!["discovered", "dispatched", "handling", "feedback"].includes(s.stage)) clearInterval(poll);
    };
    poll = setInterval(check, 1000);
    check();
    loadReports();
  } catch (err) {
    state.replaceChildren(h("p", { class: "err" }, `${t("error")}: ${err.message}`));
  }
}

button.addEventListener("pointerdown", startHold);
button.addEventListener("pointerup", reset);
button.addEventListener("pointerleave", reset);
button.addEventListener("pointercancel", reset);
button.addEventListener("contextmenu", (ev) => ev.preventDefault());
button.addEventListener("keydown", (ev) => {
  if ((ev.key === " " || ev.key === "Enter") && !ev.repeat) startHold(ev);
});
button.addEventListener("keyup", reset);

// 随手报
const form = document.getElementById("hazard");
const formState = document.getElementById("hazard-state");
let coords = { lat: null, lon: null };
document.getElementById("locate").addEventListener("click", () => {
  navigator.geolocation?.getCurrentPosition(
    (p) => {
      coords = { lat: p.coords.latitude, lon: p.coords.longitude };
      if (!form.address.value) form.address.value = `${coords.lat.toFixed(5)}, ${coords.lon.toFixed(5)}`;
    },
    () => {},
  );
});
form.address.value = me.address || "";
form.addEventListener("submit", async (ev) => {
  ev.preventDefault();
  formState.textContent = "";
  try {
    const { id } = await api("/api/hazard-reports", {
      method: "POST",
      body: {
        text: form.text.value,
        location: { ...coords, address: form.address.value },
        household: ME.household,
        reporter: ME.id,
      },
    });
    const file = form.photo.files[0];
    if (file) await uploadPhoto(id, file, "随手报");
    formState.textContent = `${t("res.submitted")} (#${id})`;
    formState.dataset.incident = id;
    form.text.value = "";
    form.photo.value = "";
    loadReports();
  } catch (err) {
    formState.textContent = `${t("error")}: ${err.message}`;
  }
});

async function loadReports() {
  const { items } = await api("/api/web/my-reports");
  document.getElementById("reports").replaceChildren(
    ...(items.length
      ? items.map((r) =>
          h(
            "li",
            { "data-incident": r.id, "data-stage": r.stage },
            h("b", {}, title(r)),
            h("small", {}, `${stageLabel(r.stage)} · ${fmtTime(r.opened_at, true)}`),
          ),
        )
      : [emptyItem("res.reports_none")]),
  );
}
loadReports();
