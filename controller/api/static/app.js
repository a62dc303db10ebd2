// callrec supervisor page: live calls over SSE, pause/resume, recordings search, stereo player.
// Plain ES module, no build step. The token lives in sessionStorage; POST /api/v1/session turns it
// into an HttpOnly cookie so EventSource and <audio> (which cannot send headers) are authorized.

const $ = (id) => document.getElementById(id);
const state = { token: sessionStorage.getItem("callrec_token") || "", me: null, calls: new Map(), events: null,
  cursor: null, rec: null, peaks: null, selectedRow: null };

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = resp.status === 204 ? null : await resp.json().catch(() => null);
  if (!resp.ok) {
    const err = new Error((data && data.error && data.error.message) || `${resp.status} ${resp.statusText}`);
    err.status = resp.status;
    throw err;
  }
  return data;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

const fmtDur = (ms) => {
  if (ms == null || ms < 0) return "–";
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
};
const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString() : "–");

// ---------- sign in ----------
async function signIn(token) {
  state.token = token;
  const me = await api("POST", "/api/v1/session");
  sessionStorage.setItem("callrec_token", token);
  state.me = me;
  $("who-name").textContent = me.name;
  $("who-role").textContent = me.agent_ext ? `${me.role} · ${me.agent_ext}` : me.role;
  $("login").hidden = true;
  $("who").hidden = false;
  $("app").hidden = false;
  connectEvents();
  searchRecordings(false);
}

async function signOut() {
  try { await api("DELETE", "/api/v1/session"); } catch (_) { /* already gone */ }
  sessionStorage.removeItem("callrec_token");
  location.reload();
}

// ---------- live calls ----------
function connectEvents() {
  if (state.events) state.events.close();
  const es = new EventSource("/api/v1/events");
  state.events = es;
  es.addEventListener("open", () => { $("conn").textContent = "live"; $("conn").classList.add("on"); });
  es.addEventListener("error", () => { $("conn").textContent = "reconnecting"; $("conn").classList.remove("on"); });
  es.addEventListener("snapshot", (e) => {
    state.calls = new Map(JSON.parse(e.data).calls.map((c) => [c.id, c]));
    renderCalls();
  });
  es.addEventListener("call.updated", (e) => { const { call } = JSON.parse(e.data); state.calls.set(call.id, call); renderCalls(); });
  es.addEventListener("call.ended", (e) => { const { call } = JSON.parse(e.data); state.calls.delete(call.id); renderCalls(); });
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

function why(call) {
  const d = (call.recording && call.recording.decision) || {};
  const src = (d.sources && d.sources.record) || "";
  return el("span", { class: "muted small", title: JSON.stringify(d.sources || {}) }, src ? `${d.record ? "record" : "skip"} · ${src}` : "");
}

async function pauseResume(call, action, button) {
  button.disabled = true;
  $("live-error").textContent = "";
  try {
    const view = await api("POST", `/api/v1/calls/${encodeURIComponent(call.id)}/recording/${action}`);
    state.calls.set(view.id, view);
    renderCalls();
  } catch (err) {
    $("live-error").textContent = `Could not ${action}: ${err.message}`;
    button.disabled = false;
  }
}

function renderCalls() {
  const body = $("live-body");
  body.replaceChildren();
  const calls = [...state.calls.values()].sort((a, b) => (a.started_at || "").localeCompare(b.started_at || ""));
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
  if (more && state.cursor) params.set("cursor", state.cursor);
  try {
    const data = await api("GET", `/api/v1/recordings?${params}`);
    const body = $("rec-body");
    if (!more) body.replaceChildren();
    for (const r of data.recordings) {
      const tr = el("tr", { "data-rec-id": r.id },
        el("td", {}, fmtTime(r.started_at)),
        el("td", { class: "dir" }, r.direction),
        el("td", { class: "mono" }, r.customer_number),
        el("td", { class: "mono" }, r.account_number),
        el("td", {}, (r.agents || []).join(", ") || "–"),
        el("td", { class: "mono" }, fmtDur(r.duration_ms)),
        el("td", {}, badge(r.state)));
      tr.addEventListener("click", () => openRecording(r.id, tr));
      body.append(tr);
    }
    state.cursor = data.next_cursor;
    $("rec-more").hidden = !data.next_cursor;
    $("rec-empty").hidden = body.children.length > 0;
  } catch (err) {
    $("rec-empty").hidden = false;
    $("rec-empty").textContent = `Search failed: ${err.message}`;
  }
}

async function openRecording(id, row) {
  if (state.selectedRow) state.selectedRow.classList.remove("selected");
  state.selectedRow = row || null;
  if (row) row.classList.add("selected");
  $("p-error").textContent = "";
  const rec = await api("GET", `/api/v1/recordings/${id}`);
  state.rec = rec;
  state.peaks = null;
  $("player").hidden = false;
  $("p-id").textContent = rec.id;
  const v = rec.manifest_verification || {};
  $("p-verify").className = `badge ${v.status || ""}`;
  $("p-verify").textContent = { valid: "Signature valid", invalid: "Signature INVALID", not_stored: "Not stored yet",
    no_manifest: "No manifest" }[v.status] || "Not verified";
  const pol = rec.policy || {};
  const meta = [
    ["Started", fmtTime(rec.started_at)], ["Length", fmtDur(rec.duration_ms)], ["Direction", rec.direction],
    ["State", rec.state + (rec.stop_reason ? ` (${rec.stop_reason})` : "")],
    ["Customer", rec.customer_number], ["Our number", rec.account_number], ["Agents", (rec.agents || []).join(", ") || "–"],
    ["Policy", `${pol.record ? "record" : "skip"} via ${(pol.sources && pol.sources.record) || "?"}`],
  ];
  $("p-meta").replaceChildren(...meta.map(([k, val]) => el("div", {}, el("dt", {}, k), el("dd", {}, val || "–"))));
  $("p-events").replaceChildren(...(rec.events || []).map((e) =>
    el("li", {}, el("span", { class: "t" }, fmtDur(e.offset_ms)), `${e.kind}${e.actor ? ` by ${e.actor}` : ""}`)));
  const audio = $("audio");
  const dl = $("p-download");
  dl.hidden = !(rec.permissions && rec.permissions.download) || rec.state !== "stored";
  dl.href = `/api/v1/recordings/${rec.id}/audio?download=1`;
  if (rec.state === "stored" && rec.permissions && rec.permissions.listen) {
    audio.hidden = false;
    audio.src = `/api/v1/recordings/${rec.id}/audio`;
    try {
      state.peaks = await api("GET", `/api/v1/recordings/${rec.id}/waveform?buckets=${$("wave").width}`);
    } catch (err) { $("p-error").textContent = `Waveform unavailable: ${err.message}`; }
  } else {
    audio.removeAttribute("src");
    audio.hidden = true;
    $("p-error").textContent = rec.state !== "stored" ? `Playback once stored (now ${rec.state}).` : "You may not listen to this recording.";
  }
  drawWave();
}

// ---------- waveform ----------
function drawWave() {
  const canvas = $("wave");
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, lane = H / 2;
  ctx.clearRect(0, 0, W, H);
  const rec = state.rec;
  if (!rec) return;
  const css = getComputedStyle(document.documentElement);
  const color = (name) => css.getPropertyValue(name).trim();
  const total = (state.peaks && state.peaks.duration_ms) || rec.duration_ms || 1;
  const x = (ms) => (Math.max(0, Math.min(ms, total)) / total) * W;
  const tl = rec.timeline || {};
  ctx.fillStyle = color("--pause");  // pause spans under the waveform
  for (const p of tl.pauses || []) {
    const x0 = x(p.start_ms), x1 = x(p.end_ms == null ? total : p.end_ms);
    ctx.fillRect(x0, 0, Math.max(2, x1 - x0), H);
  }
  ctx.strokeStyle = "#e3e7ee";
  ctx.beginPath(); ctx.moveTo(0, lane); ctx.lineTo(W, lane); ctx.stroke();
  if (state.peaks) {
    const lanes = state.peaks.peaks;
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
    ctx.fillText(`paused · ${p.by || ""}`, x(p.start_ms) + 4, 12);
  }
  ctx.setLineDash([4, 3]);
  for (const t of tl.transfers || []) {
    const tx = x(t.at_ms);
    ctx.strokeStyle = color("--xfer");
    ctx.beginPath(); ctx.moveTo(tx, 0); ctx.lineTo(tx, H); ctx.stroke();
    ctx.fillStyle = color("--xfer");
    ctx.fillText(`${t.kind} → ${t.target}${t.stopped_recording ? " (stopped)" : ""}`, Math.min(tx + 4, W - 140), H - 6);
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
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); searchRecordings(false); });
  $("rec-more").addEventListener("click", () => searchRecordings(true));
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
