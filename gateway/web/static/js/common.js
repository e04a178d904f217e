// Shared helpers of the console pages: i18n, API calls, DOM building, live push, video.
export const I18N = JSON.parse(document.getElementById("i18n").textContent);
export const ME = JSON.parse(document.getElementById("me").textContent);
export const LANG = document.body.dataset.lang || "zh";

export function t(key) {
  return I18N[key] ?? key;
}

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.detail = detail;
  }
}

let leaving = false;
addEventListener("beforeunload", () => {
  leaving = true;
});
addEventListener("pageshow", () => {
  leaving = false; // back from the cache, or a navigation that did not happen
});

export async function api(path, { method = "GET", body, raw, headers = {} } = {}) {
  const init = { method, headers: { ...headers }, credentials: "same-origin" };
  if (raw !== undefined) {
    init.body = raw;
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const res = await fetch(path, init);
  if (res.status === 401) {
    // Signed out elsewhere or expired: to the sign-in page, unless the page is already
    // leaving (signing out ends the session while this page's calls may still be running;
    // a second navigation would cancel the first).
    if (!leaving) location.href = "/login";
    leaving = true;
    throw new ApiError(401, "sign in");
  }
  const type = res.headers.get("content-type") || "";
  const data = type.includes("json") ? await res.json() : await res.text();
  if (!res.ok) throw new ApiError(res.status, data.detail ?? data);
  return data;
}

// h("div", {class: "x", onclick: fn}, "text", child, ...)
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function fmtTime(iso, withDate = false) {
  if (!iso) return "—";
  const d = new Date(iso);
  const opts = { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false };
  if (withDate) Object.assign(opts, { month: "2-digit", day: "2-digit" });
  return d.toLocaleString(LANG === "zh" ? "zh-CN" : "en-GB", opts);
}

export function title(inc) {
  return LANG === "en" && inc.title_en ? inc.title_en : inc.title_zh;
}

export const STAGES = ["discovered", "dispatched", "handling", "feedback", "verified", "evaluated"];

export function stageBar(stage) {
  const at = STAGES.indexOf(stage);
  return h(
    "ol",
    { class: "stages", "data-stage": stage, "data-testid": "stages" },
    STAGES.map((s, i) =>
      h("li", { class: i < at ? "done" : i === at ? "now" : "" }, h("b", {}, i + 1), t(`stage.${s}`)),
    ),
    at < 0 ? h("li", { class: "now closed" }, t(`stage.${stage}`)) : null,
  );
}

export function sevBadge(sev) {
  return h("span", { class: `sev-badge ${sev}` }, sev);
}

export function timeline(entries, names = {}) {
  return h(
    "ol",
    { class: "timeline", "data-testid": "timeline" },
    entries.map((e) =>
      h(
        "li",
        { "data-action": e.action },
        h("time", {}, fmtTime(e.at, true)),
        h("b", {}, t(`act.${e.action}`)),
        h("span", { class: "actor" }, names[e.actor] || e.actor),
        e.to_stage && e.from_stage !== e.to_stage ? h("span", { class: "tag" }, t(`stage.${e.to_stage}`)) : null,
        e.note ? h("p", { class: "note" }, e.note) : null,
      ),
    ),
  );
}

export async function act(id, action, extra = {}) {
  return api(`/api/incidents/${id}/actions`, {
    method: "POST",
    body: { action, actor: ME.id, role: ME.role, ...extra },
  });
}

export async function uploadPhoto(id, file, note = "") {
  const q = new URLSearchParams({ filename: file.name || "photo.jpg", actor: ME.id, role: ME.role, note });
  return api(`/api/incidents/${id}/attachments?${q}`, {
    method: "POST",
    raw: file,
    headers: { "Content-Type": file.type || "application/octet-stream" },
  });
}

// A brute-force alert on top of the page (text only, never markup).
function securityBanner(item) {
  const text = LANG === "zh" ? item.text_zh : item.text_en;
  const banner = h("div", { class: "security-alert", role: "alert", "data-testid": "security-alert" }, text);
  document.querySelector("main")?.prepend(banner);
}

// Live console push: {type: "incident" | "notification" | ...}. Reconnects by itself.
export function subscribe(onItem, recipients = []) {
  const q = new URLSearchParams();
  recipients.forEach((r) => q.append("recipient", r));
  let source;
  const open = () => {
    source = new EventSource(`/api/notifications/stream${recipients.length ? "?" + q : ""}`);
    for (const type of ["incident", "notification", "delivery", "update"]) {
      source.addEventListener(type, (ev) => onItem({ type, ...JSON.parse(ev.data) }));
    }
    // administrators only (the server addresses it to role/administrator)
    source.addEventListener("security_alert", (ev) => securityBanner(JSON.parse(ev.data)));
    source.onmessage = (ev) => onItem(JSON.parse(ev.data));
  };
  open();
  return () => source.close();
}

export function events(onEvent) {
  const source = new EventSource("/api/events/stream");
  const handle = (ev) => {
    try {
      onEvent(JSON.parse(ev.data));
    } catch {
      /* keep-alive */
    }
  };
  source.onmessage = handle;
  source.addEventListener("event", handle);
  return () => source.close();
}

// A short alarm tone (no audio file needed). Browsers allow it after a first user gesture.
let audio;
export function beep(times = 3) {
  try {
    audio = audio || new AudioContext();
    for (let i = 0; i < times; i++) {
      const o = audio.createOscillator();
      const g = audio.createGain();
      o.frequency.value = i % 2 ? 660 : 880;
      o.connect(g).connect(audio.destination);
      const at = audio.currentTime + i * 0.35;
      g.gain.setValueAtTime(0.2, at);
      o.start(at);
      o.stop(at + 0.25);
    }
  } catch {
    /* no audio device */
  }
}

// WebRTC live view: POST the offer to /api/live/{camera}/offer and play the answer.
export async function liveVideo(cameraId, video) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.ontrack = (ev) => {
    video.srcObject = ev.streams[0] || new MediaStream([ev.track]);
    video.play().catch(() => {});
  };
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise((resolve) => {
    if (pc.iceGatheringState === "complete") return resolve();
    const done = () => pc.iceGatheringState === "complete" && resolve();
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 2000);
  });
  const answer = await api(`/api/live/${encodeURIComponent(cameraId)}/offer`, {
    method: "POST",
    body: { sdp: pc.localDescription.sdp, type: "offer" },
  });
  await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  video.dataset.session = answer.session_id;
  const close = () => {
    pc.close();
    fetch(`/api/live/${encodeURIComponent(cameraId)}/sessions/${answer.session_id}`, {
      method: "DELETE",
      keepalive: true,
    }).catch(() => {});
  };
  addEventListener("pagehide", close, { once: true });
  return close;
}

export function videoTile(cameraId) {
  const video = h("video", { muted: true, autoplay: true, playsinline: true, "data-camera": cameraId });
  video.muted = true;
  const tile = h("figure", { class: "tile", "data-testid": "tile" }, video, h("figcaption", {}, cameraId));
  liveVideo(cameraId, video).catch((err) => tile.append(h("p", { class: "err" }, String(err.message || err))));
  return tile;
}

export function clock(el, deadlineIso, ackedIso) {
  const tick = () => {
    if (ackedIso) {
      el.textContent = `${t("desk.acked")} ${fmtTime(ackedIso)}`;
      el.className = "clock acked";
      return;
    }
    if (!deadlineIso) {
      el.textContent = "—";
      return;
    }
    const left = Math.round((new Date(deadlineIso) - Date.now()) / 1000);
    if (left <= 0) {
      el.textContent = `${t("desk.escalated")} (+${-left}s)`;
      el.className = "clock late";
    } else {
      el.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
      el.className = left < 20 ? "clock soon" : "clock";
    }
  };
  tick();
  return setInterval(tick, 500);
}

export function showError(where, err) {
  where.replaceChildren(h("p", { class: "err" }, `${t("error")}: ${err.message || err}`));
}
