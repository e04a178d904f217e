// Shared helpers of the console pages: i18n, API calls, DOM building, live push, video.
export const I18N = JSON.parse(document.getElementById("i18n").textContent);
export const ME = JSON.parse(document.getElementById("me").textContent);
export const LANG = document.body.dataset.lang || "zh";

export function t(key, values) {
  const text = I18N[key] ?? key;
  return values ? fill(text, values) : text;
}

// "{site} …" with values; a placeholder without a value stays as it is (a gap shows).
export function fill(text, values = {}) {
  return text.replace(/\{(\w+)\}/g, (m, k) => (values[k] ?? m));
}

// The domain's words (gateway/web/terms.py, stage./cat./act. in i18n.py): a value the
// catalogue lacks shows as it is, so a gap is visible rather than blank.
function term(prefix, value) {
  if (value === undefined || value === null || value === "") return "—";
  return I18N[`${prefix}.${value}`] ?? String(value);
}
export const kindLabel = (v) => term("kind", v);
export const typeLabel = (v) => term("type", v);
export const roleLabel = (v) => term("role", v);
export const sourceLabel = (v) => term("source", v);
export const catLabel = (v) => term("cat", v);
export const stageLabel = (v) => term("stage", v);
export const actionLabel = (v) => term("act", v);
// "webhook:city-platform" → "Webhook 推送: city-platform"
export function channelLabel(v) {
  const [kind, name] = String(v || "").split(/:(.*)/s);
  return name ? `${term("channel", kind)}: ${name}` : term("channel", kind);
}
export const actorLabel = (v, names = {}) => (v === "system" ? t("actor.system") : names[v] || v);
export const seconds = (v) => (v === null || v === undefined ? "—" : t("unit.seconds", { n: Math.round(v) }));

// What an empty list says (and, before its first load, "loading…").
export function emptyItem(key, tag = "li") {
  return h(tag, { class: "muted empty", "data-empty": key }, t(key));
}
export function emptyRow(key, columns) {
  return h("tr", { class: "empty" }, h("td", { class: "muted", colspan: columns, "data-empty": key }, t(key)));
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

// Times in the page's language, dates with the month in words (12月4日 / 4 Dec): a date
// written 12/04 reads as two different days in the two languages.
export function fmtTime(iso, withDate = false) {
  if (!iso) return "—";
  const d = new Date(iso);
  const opts = { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false };
  if (withDate) Object.assign(opts, { month: "short", day: "numeric" });
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
      h("li", { class: i < at ? "done" : i === at ? "now" : "" }, h("b", {}, i + 1), stageLabel(s)),
    ),
    at < 0 ? h("li", { class: "now closed" }, stageLabel(stage)) : null,
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
        h("b", {}, actionLabel(e.action)),
        h("span", { class: "actor" }, actorLabel(e.actor, names)),
        e.to_stage && e.from_stage !== e.to_stage ? h("span", { class: "tag" }, stageLabel(e.to_stage)) : null,
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
// `onEnd` is told when the connection fails or closes after it was set up.
export async function liveVideo(cameraId, video, onEnd = () => {}) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  pc.addTransceiver("video", { direction: "recvonly" });
  pc.ontrack = (ev) => {
    video.srcObject = ev.streams[0] || new MediaStream([ev.track]);
    video.play().catch(() => {});
  };
  pc.addEventListener("connectionstatechange", () => {
    if (["failed", "disconnected", "closed"].includes(pc.connectionState)) onEnd(pc.connectionState);
  });
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

const FIRST_FRAME_S = 15; // a tile still without a picture by then says the video failed

// A live tile: "connecting…" over it until the first frame plays, then the picture; a
// failure or a dropped connection says so (the reason in the tooltip) instead of black.
export function videoTile(cameraId) {
  const video = h("video", { muted: true, autoplay: true, playsinline: true, "data-camera": cameraId });
  video.muted = true;
  const state = h("span", { class: "tile-state", "data-testid": "tile-state" });
  const tile = h("figure", { class: "tile", "data-testid": "tile" }, video, state, h("figcaption", {}, cameraId));
  const show = (name, key, detail = "") => {
    tile.dataset.state = name;
    state.textContent = key ? t(key) : "";
    state.title = detail;
    state.hidden = !key;
  };
  show("connecting", "video.connecting");
  video.addEventListener("playing", () => show("playing", null));
  const late = setTimeout(() => {
    if (tile.dataset.state === "connecting") show("failed", "video.failed", `no picture within ${FIRST_FRAME_S}s`);
  }, FIRST_FRAME_S * 1000);
  video.addEventListener("playing", () => clearTimeout(late), { once: true });
  liveVideo(cameraId, video, (why) => show("ended", "video.ended", why)).catch((err) => {
    clearTimeout(late);
    show("failed", "video.failed", String(err.message || err));
  });
  return tile;
}

// A picture that says "loading…" until it arrives and "unavailable" if it does not, instead
// of a black box. `set(src)` shows another one (an empty src: loading, e.g. while a
// snapshot is being taken).
export function picture(alt, src = "", { testid = "picture", pending = "img.loading" } = {}) {
  const img = h("img", { alt });
  const state = h("span", { class: "pic-state" });
  const box = h("span", { class: "pic", "data-testid": testid }, img, state);
  const show = (name, key) => {
    box.dataset.state = name;
    state.textContent = key ? t(key) : "";
    state.hidden = !key;
    img.hidden = name !== "loaded";
  };
  img.addEventListener("load", () => show("loaded", null));
  img.addEventListener("error", () => img.getAttribute("src") && show("failed", "img.failed"));
  const set = (url, key = pending) => {
    show("loading", key);
    if (url) img.src = url;
    else img.removeAttribute("src");
  };
  const fail = (detail = "") => {
    show("failed", "img.failed");
    state.title = detail;
  };
  set(src);
  return { el: box, img, set, fail };
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
