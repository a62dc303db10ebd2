// callrec page: sign-in, screens, live calls over SSE, pause/resume, recordings search and the player.
// Plain ES modules, no build step. The token lives in sessionStorage; POST /api/v1/session turns it
// into an HttpOnly cookie so EventSource and <audio> (which cannot send headers) are authorized.
// The admin screens are in admin.js; every screen calls only documented /api/v1 routes.

import { $, api, el, fmtDur, fmtTime, onOff, SETTINGS, sourceText, state } from "./common.js";
import { showAdminScreen } from "./admin.js";

const sup = { calls: new Map(), events: null, poll: false, etag: null, cursor: null, rec: null, peaks: null, selectedRow: null, limits: null };

// ---------- sign in and screens ----------
async function signIn(token) {
  state.token = token;
  const me = await api("POST", "/api/v1/session");
  sessionStorage.setItem("callrec_token", token);
  state.me = me;
  $("who-name").textContent = me.name;
  $("who-role").textContent = me.agent_ext ? `${me.role} · ${me.agent_ext}` : me.role;
  $("brand-sub").textContent = (me.rights || []).length ? "Admin" : me.role;
  $("login").hidden = true;
  $("who").hidden = false;
  $("tabs").hidden = false;
  const rights = new Set(me.rights || []);
  for (const b of document.querySelectorAll("#tabs [data-right]")) b.hidden = !b.dataset.right.split(" ").some((r) => rights.has(r));
  showScreen("calls");
  connectEvents();
  searchRecordings(false);
}

async function signOut() {
  try { await api("DELETE", "/api/v1/session"); } catch (_) { /* already gone */ }
  sessionStorage.removeItem("callrec_token");
  location.reload();
}

function showScreen(name) {
  for (const s of document.querySelectorAll(".screen")) s.hidden = s.dataset.screen !== name;
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("on", b.dataset.screen === name);
  if (name !== "calls") showAdminScreen(name);
}

// ---------- live calls ----------
// Server-sent events (/api/v1/events) when the browser and the network path allow them; otherwise,
// or when the stream keeps failing before it ever opens (a proxy that buffers or cuts it), the page
// polls GET /api/v1/calls with If-None-Match, so an unchanged list costs a 304 and no re-render.
const POLL_MS = 2000;
const SSE_FAILURES_BEFORE_POLLING = 3;

function setConn(text, on) { $("conn").textContent = text; $("conn").classList.toggle("on", on); }

function connectEvents() {
  if (sup.events) sup.events.close();
  if (typeof EventSource !== "function") { startPolling(); return; }
  const es = new EventSource("/api/v1/events");
  sup.events = es;
  let opened = false, failures = 0;
  es.addEventListener("open", () => { opened = true; failures = 0; setConn("live", true); });
  es.addEventListener("error", () => {
    setConn("reconnecting", false);
    if (!opened && ++failures >= SSE_FAILURES_BEFORE_POLLING) { es.close(); sup.events = null; startPolling(); }
  });
  es.addEventListener("revoked", () => { es.close(); sup.events = null; setConn("signed out", false); });
  es.addEventListener("snapshot", (e) => {
    sup.calls = new Map(JSON.parse(e.data).calls.map((c) => [c.id, c]));
    renderCalls();
  });
  es.addEventListener("call.updated", (e) => { const { call } = JSON.parse(e.data); sup.calls.set(call.id, call); renderCalls(); });
  es.addEventListener("call.ended", (e) => { const { call } = JSON.parse(e.data); sup.calls.delete(call.id); renderCalls(); });
}

async function pollCalls() {
  try {
    const headers = { Authorization: `Bearer ${state.token}` };
    if (sup.etag) headers["If-None-Match"] = sup.etag;
    const resp = await fetch("/api/v1/calls", { headers, cache: "no-store" });
    if (resp.status === 401) { setConn("signed out", false); return false; }
    if (resp.status === 200) {
      sup.etag = resp.headers.get("ETag");
      sup.calls = new Map((await resp.json()).calls.map((c) => [c.id, c]));
      renderCalls();
    }
    if (resp.ok || resp.status === 304) setConn("polling", true);
  } catch (_) {
    setConn("reconnecting", false);
  }
  return true;
}

function startPolling() {
  if (sup.poll) return;
  sup.poll = true;
  const tick = async () => { if (await pollCalls()) setTimeout(tick, POLL_MS); else sup.poll = false; };
  tick();
}

function recState(call) { return (call.recording && call.recording.state) || "not_recording"; }

// Is the call inside a resolved scope from /api/v1/me ("all", "none", or ring_group:<id>/agent:<ext> list)?
function covers(scope, call) {
  if (scope === "all") return true;
  if (!scope || scope === "none") return false;
  const groups = new Set([call.ring_group, ...(call.ring_groups || [])].filter(Boolean));
  const agents = new Set([call.agent, ...(call.agents || [])].filter(Boolean));
  for (const seg of (call.timeline && call.timeline.segments) || []) {
    if (seg.class === "ring_group") groups.add(seg.party); else if (seg.party) agents.add(seg.party);
  }
  return scope.split(",").some((term) => {
    const [kind, id] = term.split(":");
    return (kind === "ring_group" && groups.has(id)) || (kind === "agent" && agents.has(id));
  });
}

function mayPause(call) {
  const me = state.me;
  if (!me) return false;
  if (covers(me.pause_scope, call)) return true;
  const settings = (call.recording && call.recording.decision && call.recording.decision.settings) || {};
  return !!me.agent_pause && call.agent === me.agent_ext && !!settings.agent_pause_allowed;
}

function badge(st) {
  const label = { recording: "Recording", paused: "Paused", not_recording: "Not recording", stopped: "Stopped",
    stored: "Stored", failed: "Failed", orphaned: "Orphaned" }[st] || st;
  return el("span", { class: `badge ${st}`, "data-testid": "rec-state" }, label);
}

// A failed recording says why where the list shows it (e.g. "no_recipient: account acme has no
// usable recipient"): it waits in the spool and is stored once the cause is fixed.
function failureNote(rec) {
  if (rec.state !== "failed" || !rec.error) return "";
  return el("div", { class: "fail-note", "data-testid": "rec-error", title: rec.error }, rec.error);
}

function why(call) {
  const d = (call.recording && call.recording.decision) || {};
  const src = (d.sources && d.sources.record) || "";
  return el("span", { class: "muted small", title: JSON.stringify(d.sources || {}) },
    src ? `${d.record ? "record" : "skip"} · ${sourceText(src)}` : "");
}

async function pauseResume(call, action, button) {
  button.disabled = true;
  $("live-error").textContent = "";
  try {
    const view = await api("POST", `/api/v1/calls/${encodeURIComponent(call.id)}/recording/${action}`, { via: "page" });
    sup.calls.set(view.id, view);
    renderCalls();
  } catch (err) {
    $("live-error").textContent = `Could not ${action}: ${err.message}`;
    button.disabled = false;
  }
}

function renderCalls() {
  const body = $("live-body");
  body.replaceChildren();
  const calls = [...sup.calls.values()].sort((a, b) => (a.started_at || "").localeCompare(b.started_at || ""));
  for (const call of calls) {
    const st = recState(call);
    const actions = el("td");
    if (mayPause(call) && (st === "recording" || st === "paused")) {
      const action = st === "recording" ? "pause" : "resume";
      const b = el("button", { class: action, type: "button", "data-testid": `${action}-btn` }, action === "pause" ? "Pause" : "Resume");
      b.addEventListener("click", () => pauseResume(call, action, b));
      actions.append(b);
    }
    const started = Date.parse(call.answered_at || call.started_at || "");
    body.append(el("tr", { "data-call-id": call.id },
      el("td", { class: "dir" }, call.direction || ""),
      el("td", { class: "mono" }, call.customer_number || ""),
      el("td", { class: "mono" }, call.account_number || ""),
      el("td", {}, call.agent || "–"),
      el("td", {}, call.ring_group || "–"),
      el("td", { class: "mono", "data-since": Number.isNaN(started) ? "" : String(started) }, ""),
      el("td", {}, badge(st)),
      el("td", {}, why(call)),
      actions));
  }
  $("live-count").textContent = String(calls.length);
  $("live-empty").hidden = calls.length > 0;
  tickDurations();
}

function tickDurations() {
  for (const td of document.querySelectorAll("td[data-since]")) {
    const since = Number(td.dataset.since);
    td.textContent = since ? fmtDur(Date.now() - since) : "–";
  }
}
setInterval(tickDurations, 1000);

// ---------- recordings ----------
function searchParams() {
  const form = new FormData($("search-form"));
  const params = new URLSearchParams();
  for (const [k, v] of form.entries()) {
    if (!v) continue;
    params.set(k, k === "from" || k === "to" ? new Date(v).toISOString() : v);
  }
  params.set("limit", "25");
  return params;
}

async function searchRecordings(more) {
  const params = searchParams();
  if (more && sup.cursor) params.set("cursor", sup.cursor);
  try {
    const data = await api("GET", `/api/v1/recordings?${params}`);
    const body = $("rec-body");
    if (!more) body.replaceChildren();
    for (const r of data.recordings) {
      const perms = r.permissions || {};
      const acts = el("td", { class: "acts" });
      const tr = el("tr", { "data-rec-id": r.id },
        el("td", {}, fmtTime(r.started_at)),
        el("td", { class: "dir" }, r.direction),
        el("td", { class: "mono" }, r.customer_number),
        el("td", { class: "mono" }, r.account_number),
        el("td", {}, (r.agents || []).join(", ") || "–"),
        el("td", { class: "mono" }, fmtDur(r.duration_ms)),
        el("td", {}, badge(r.state), failureNote(r)),
        acts);
      if (perms.listen && r.state === "stored") {
        acts.append(el("button", { type: "button", class: "play", "data-testid": "play-btn",
          onclick: (e) => { e.stopPropagation(); openRecording(r.id, tr, true); } }, "▶ Play"));
      }
      if (perms.download && r.state === "stored") {
        acts.append(el("a", { class: "button ghost", "data-testid": "download-link", href: `/api/v1/recordings/${r.id}/audio?download=1`,
          onclick: (e) => e.stopPropagation() }, "Download"));
      }
      tr.addEventListener("click", () => openRecording(r.id, tr, false));
      body.append(tr);
    }
    sup.cursor = data.next_cursor;
    $("rec-more").hidden = !data.next_cursor;
    $("rec-empty").hidden = body.children.length > 0;
  } catch (err) {
    $("rec-empty").hidden = false;
    $("rec-empty").textContent = `Search failed: ${err.message}`;
  }
}

// ---------- the player (a dialog over the list) ----------
function ruleSentence(rec) {
  const pol = rec.policy || {};
  const src = pol.sources || {};
  const settings = pol.settings || {};
  const transfers = (rec.timeline && rec.timeline.transfers) || [];
  const external = transfers.find((t) => t.target_class === "external");
  if (external) {
    const value = settings.continue_on_external_transfer;
    const outcome = external.stopped_recording ? "the recording stopped at the transfer" : "the recording continued";
    return `${sourceText(src.continue_on_external_transfer) || "account setting"}: continue on external transfer = ` +
      `${onOff(value)} → ${outcome} (${external.kind} transfer to ${external.target})`;
  }
  const recordSrc = src.record;
  return `${pol.record ? "Recorded" : "Not recorded"} by ${sourceText(recordSrc) || "policy"}` +
    (recordSrc && recordSrc !== "dialplan" && rec.direction ? ` (record ${rec.direction} = ${onOff(pol.record)})` : "");
}

function timelineItems(rec) {
  const items = [];
  for (const e of rec.events || []) {
    if (e.kind === "transfer") continue;  // named from the timeline below, with target and class
    items.push({ at: e.offset_ms || 0, text: `${e.kind}${e.actor ? ` by ${e.actor}` : ""}` });
  }
  for (const t of (rec.timeline && rec.timeline.transfers) || []) {
    const cls = (t.target_class || "unknown").replace("_", " ");
    items.push({ at: t.at_ms || 0, xfer: true,
      text: `${t.kind} transfer → ${t.target} (${cls})${t.stopped_recording ? " — recording stopped here" : ""}` });
  }
  return items.sort((a, b) => a.at - b.at);
}

async function openRecording(id, row, play) {
  if (sup.selectedRow) sup.selectedRow.classList.remove("selected");
  sup.selectedRow = row || null;
  if (row) row.classList.add("selected");
  $("p-error").textContent = "";
  const rec = await api("GET", `/api/v1/recordings/${id}`);
  sup.rec = rec;
  sup.peaks = null;
  const dialog = $("player");
  if (!dialog.open) dialog.showModal();
  $("p-id").textContent = rec.id;
  const v = rec.manifest_verification || {};
  $("p-verify").className = `badge ${v.status || ""}`;
  $("p-verify").textContent = { valid: "Signature valid", invalid: "Signature INVALID", not_stored: "Not stored yet",
    no_manifest: "No manifest" }[v.status] || "Not verified";
  $("p-rule").textContent = ruleSentence(rec);
  const pol = rec.policy || {};
  const meta = [
    ["Started", fmtTime(rec.started_at)], ["Length", fmtDur(rec.duration_ms)], ["Direction", rec.direction],
    ["State", rec.state + (rec.stop_reason ? ` (${rec.stop_reason})` : "") + (rec.state === "failed" && rec.error ? ` — ${rec.error}` : "")],
    ["Customer", rec.customer_number], ["Our number", rec.account_number], ["Agents", (rec.agents || []).join(", ") || "–"],
    ["Ring groups", (rec.ring_groups || []).join(", ") || "–"],
  ];
  $("p-meta").replaceChildren(...meta.map(([k, val]) => el("div", {}, el("dt", {}, k), el("dd", {}, val || "–"))));
  const sources = pol.sources || {};
  $("p-decision").replaceChildren(
    el("li", {}, el("b", {}, pol.record ? "recorded" : "not recorded"), ` — ${sourceText(sources.record)}`),
    ...SETTINGS.filter((s) => (pol.settings || {})[s.name] !== undefined).map((s) =>
      el("li", {}, `${s.label} = `, el("b", {}, onOff(pol.settings[s.name])),
        el("span", { class: "muted" }, ` — ${sourceText(sources[s.name])}`))));
  $("p-events").replaceChildren(...timelineItems(rec).map((i) =>
    el("li", { class: i.xfer ? "xfer" : "" }, el("span", { class: "t" }, fmtDur(i.at)), i.text)));
  const perms = rec.permissions || {};
  const stored = rec.state === "stored";
  const audio = $("audio");
  const dl = $("p-download");
  dl.hidden = !(perms.download && stored);
  dl.href = `/api/v1/recordings/${rec.id}/audio?download=1`;
  $("p-share").hidden = !(perms.listen && stored);
  $("p-share-box").hidden = true;
  $("share-new").hidden = true;
  if (stored && perms.listen) {
    audio.hidden = false;
    audio.src = `/api/v1/recordings/${rec.id}/audio`;
    if (play) audio.play().catch(() => {});
    try {
      sup.peaks = await api("GET", `/api/v1/recordings/${rec.id}/waveform?buckets=${$("wave").width}`);
    } catch (err) { $("p-error").textContent = `Waveform unavailable: ${err.message}`; }
  } else {
    audio.removeAttribute("src");
    audio.hidden = true;
    $("p-error").textContent = !stored ? `Playback once stored (now ${rec.state}).` : "You may not listen to this recording.";
  }
  drawWave();
}

function closePlayer() {
  const audio = $("audio");
  audio.pause();
  $("player").close();
}

// ---------- share links ----------
async function openShares() {
  const rec = sup.rec;
  $("p-share-box").hidden = false;
  $("share-error").textContent = "";
  if (!sup.limits) sup.limits = await api("GET", "/api/v1/sharing");
  $("share-hours").value = String(sup.limits.default_hours);
  $("share-hours").max = String(sup.limits.max_hours);
  $("share-dl-label").hidden = !(rec.permissions && rec.permissions.download);
  await listShares();
}

async function listShares() {
  const rec = sup.rec;
  const data = await api("GET", `/api/v1/recordings/${rec.id}/shares`);
  $("share-list").replaceChildren(...data.shares.map((s) => {
    const li = el("li", { "data-share-id": String(s.id) },
      el("span", { class: `badge ${s.status === "active" ? "stored" : "failed"}` }, s.status),
      ` by ${s.created_by}, expires ${fmtTime(s.expires_at)}${s.allow_download ? ", download allowed" : ", listen only"}` +
      ` · opened ${s.opens}×`);
    if (s.status === "active") {
      li.append(el("button", { type: "button", class: "ghost small-btn", onclick: async () => {
        try { await api("DELETE", `/api/v1/recordings/${rec.id}/shares/${s.id}`); await listShares(); }
        catch (err) { $("share-error").textContent = err.message; }
      } }, "Revoke"));
    }
    return li;
  }));
}

async function createShare(e) {
  e.preventDefault();
  $("share-error").textContent = "";
  const body = { expires_in_hours: Number($("share-hours").value), allow_download: $("share-dl").checked };
  try {
    const s = await api("POST", `/api/v1/recordings/${sup.rec.id}/shares`, body);
    const url = new URL(s.url, location.origin).href;
    $("share-url").textContent = url;
    $("share-url").href = url;
    $("share-new").hidden = false;
    await listShares();
  } catch (err) {
    $("share-error").textContent = err.message;
  }
}

// ---------- waveform ----------
function drawWave() {
  const canvas = $("wave");
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, lane = H / 2;
  ctx.clearRect(0, 0, W, H);
  const rec = sup.rec;
  if (!rec) return;
  const css = getComputedStyle(document.documentElement);
  const color = (name) => css.getPropertyValue(name).trim();
  const total = (sup.peaks && sup.peaks.duration_ms) || rec.duration_ms || 1;
  const x = (ms) => (Math.max(0, Math.min(ms, total)) / total) * W;
  const tl = rec.timeline || {};
  ctx.fillStyle = color("--pause");  // pause spans under the waveform
  for (const p of tl.pauses || []) {
    const x0 = x(p.start_ms), x1 = x(p.end_ms == null ? total : p.end_ms);
    ctx.fillRect(x0, 0, Math.max(2, x1 - x0), H);
  }
  ctx.strokeStyle = "#e3e7ee";
  ctx.beginPath(); ctx.moveTo(0, lane); ctx.lineTo(W, lane); ctx.stroke();
  if (sup.peaks) {
    const lanes = sup.peaks.peaks;
    const n = lanes[0].length;
    lanes.forEach((peaks, li) => {
      ctx.fillStyle = color(li === 0 ? "--cust" : "--agent");
      const mid = lane * li + lane / 2;
      for (let i = 0; i < n; i++) {
        const h = Math.max(1, peaks[i] * (lane / 2 - 6) * 2.2);
        ctx.fillRect((i / n) * W, mid - Math.min(h, lane / 2 - 4), Math.max(1, W / n - 0.5), Math.min(2 * h, lane - 8));
      }
    });
  }
  ctx.font = "11px system-ui, sans-serif";
  for (const p of tl.pauses || []) {
    ctx.fillStyle = "#a86c00";
    const label = p.kind === "transfer_mute" ? `muted for transfer · ${p.outcome || "…"}` : `paused · ${p.by || ""}`;
    ctx.fillText(label, x(p.start_ms) + 4, 12);
  }
  ctx.setLineDash([4, 3]);
  for (const t of tl.transfers || []) {
    const tx = x(t.at_ms);
    ctx.strokeStyle = color("--xfer");
    ctx.beginPath(); ctx.moveTo(tx, 0); ctx.lineTo(tx, H); ctx.stroke();
    ctx.fillStyle = color("--xfer");
    ctx.fillText(`${t.kind} → ${t.target} (${t.target_class || "?"})${t.stopped_recording ? " stopped" : ""}`,
      Math.min(tx + 4, W - 220), H - 6);
  }
  for (const j of tl.conference || []) {  // a three-way call: who joined the customer and the agent
    ctx.fillStyle = color("--xfer");
    const left = j.left_ms == null ? "" : " (left)";
    ctx.fillText(`+ ${j.party || "?"} joined${left}`, Math.min(x(j.joined_ms) + 4, W - 220), 36);
  }
  for (const c of tl.consultations || []) {  // the agent consulting someone while the customer waited
    const cx = x(c.at_ms);
    ctx.fillStyle = color("--xfer");
    const how = c.outcome === "returned" ? ` · back${c.cause ? " (" + c.cause + ")" : ""}` : "";
    ctx.fillText(`consults ${c.target || "?"}${how}`, Math.min(cx + 4, W - 220), 24);
  }
  ctx.setLineDash([]);
  const audio = $("audio");
  if (audio.duration && !Number.isNaN(audio.duration)) {  // playhead
    const px = (audio.currentTime / audio.duration) * W;
    ctx.strokeStyle = "#121a2b"; ctx.lineWidth = 2;
    ctx.beginPath(); ctx.moveTo(px, 0); ctx.lineTo(px, H); ctx.stroke();
    ctx.lineWidth = 1;
  }
}

function wire() {
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("login-error").textContent = "";
    try { await signIn($("token").value.trim()); } catch (err) { $("login-error").textContent = err.message; }
  });
  $("sign-out").addEventListener("click", signOut);
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showScreen(b.dataset.screen));
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); searchRecordings(false); });
  $("rec-more").addEventListener("click", () => searchRecordings(true));
  $("p-close").addEventListener("click", closePlayer);
  $("player").addEventListener("close", () => $("audio").pause());
  $("p-share").addEventListener("click", () => openShares().catch((err) => { $("share-error").textContent = err.message; }));
  $("share-form").addEventListener("submit", createShare);
  const audio = $("audio");
  audio.addEventListener("timeupdate", drawWave);
  audio.addEventListener("loadedmetadata", drawWave);
  $("wave").addEventListener("click", (e) => {
    if (!audio.duration) return;
    const r = e.target.getBoundingClientRect();
    audio.currentTime = ((e.clientX - r.left) / r.width) * audio.duration;
  });
}

wire();
// `callrec lab` prints a link with the admin token in the fragment (never sent to the server):
// take it once, then drop it from the address bar and history.
if (location.hash.startsWith("#token=")) {
  state.token = decodeURIComponent(location.hash.slice(7));
  history.replaceState(null, "", location.pathname + location.search);
}
if (state.token) {
  signIn(state.token).catch(() => { sessionStorage.removeItem("callrec_token"); $("login").hidden = false; });
} else {
  $("login").hidden = false;
}
