// Shared by the page's modules: the API client, a tiny element builder, formatting, the setting texts.

export const $ = (id) => document.getElementById(id);
export const state = { token: sessionStorage.getItem("callrec_token") || "", me: null };

export async function api(method, path, body, headers = {}) {
  const h = { Authorization: `Bearer ${state.token}`, ...headers };
  if (body !== undefined) h["Content-Type"] = "application/json";
  const resp = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const data = resp.status === 204 ? null : await resp.json().catch(() => null);
  if (!resp.ok) {
    const e = (data && data.error) || {};
    const err = new Error(e.message || `${resp.status} ${resp.statusText}`);
    err.status = resp.status;
    err.field = e.field;
    err.current = e.current;
    throw err;
  }
  return data;
}

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

export const fmtDur = (ms) => {
  if (ms == null || ms < 0) return "–";
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
};
export const fmtTime = (iso) => (iso ? new Date(iso).toLocaleString() : "–");

// The settings, in the words an administrator needs before changing one.
export const SETTINGS = [
  { name: "record_inbound", label: "Record inbound calls",
    help: "Calls from customers into this account (the number they dialled) are recorded." },
  { name: "record_outbound", label: "Record outbound calls",
    help: "Calls agents place to customers (the caller ID presented) are recorded." },
  { name: "continue_on_external_transfer", label: "Continue recording on external transfer",
    help: "Off: when an agent transfers the call — blind or warm (attended) — to an EXTERNAL number, the recording " +
      "stops at the transfer; the part before it is kept. On: the recording follows the customer to the external " +
      "party. Transfers to agents, ring groups and private extensions never stop a recording." },
  { name: "external_joiner", label: "External party joins a conference",
    choices: [["stop", "stop the recording"], ["mute", "mute while it is in the call"]],
    help: "Applies when continuing on external transfer is off and an agent brings an EXTERNAL party into the " +
      "call (a conference or three-way call). Stop: the recording ends where that party joins; the part before is " +
      "kept. Mute: the recording is silent while that party is in the call and records the customer and the agent " +
      "again once it has left (the gap is marked in the timeline). Colleagues joining are always recorded." },
  { name: "agent_pause_allowed", label: "Agents may pause",
    help: "Agents may pause and resume their own call's recording (e.g. for card details). Supervisors always may; " +
      "every pause is logged with who and when." },
  { name: "dual_channel", label: "Dual channel (stereo)",
    help: "On: customer on the left channel, agent on the right. Off: one mono mix." },
  { name: "record_consultation", label: "Record consultation calls",
    help: "When an agent puts the customer on hold and calls a colleague or an outside number (a consultation " +
      "before an attended transfer), that call belongs to the customer's call and is listed in its recording's " +
      "timeline either way. On: the consultation is also recorded, as a recording of its own filed under the " +
      "customer call's numbers (the consulted party left, the agent right), ending when the consultation does " +
      "(a consultation the agent's phone places; one the PBX runs inside the customer's call is listed only). " +
      "Off: it is not recorded — it is never taken for a separate customer call." },
  { name: "retention_days", label: "Retention (days)", number: true,
    help: "How long a recording is kept. Fixed when the recording is made: a change applies to new recordings only." },
  { name: "pause_max_seconds", label: "Secure pause: resume after (seconds)", number: true, min: 0, max: 86400,
    help: "0 = a pause lasts until someone resumes. Otherwise a pause resumes by itself after this many seconds, " +
      "and the agent hears a warning tone 10 s before — so a forgotten pause never leaves the rest of a call unrecorded." },
  { name: "agent_record_on_demand", label: "Agents may record on demand",
    help: "Where this account or number does not record a call, the agent may start recording it from that moment " +
      "with the record code on their phone (default *3). A dialplan hook's never is final." },
  { name: "announcement", label: "Consent announcement",
    choices: [["none", "none"], ["beep", "beep at start"], ["prompt", "a prompt file"], ["periodic", "periodic beep"]],
    help: "What the CUSTOMER hears when recording starts, so two-party-consent jurisdictions are covered: nothing, " +
      "one beep, your recorded prompt (the file below), or a beep at the start and every interval. The agent's " +
      "recording shows it played." },
  { name: "announcement_interval_seconds", label: "Periodic beep every (seconds)", number: true, min: 1, max: 3600,
    help: "For the periodic announcement: seconds between beeps while the call is recorded (paused: no beep)." },
  { name: "announcement_prompt", label: "Announcement prompt file", text: true,
    placeholder: "/usr/share/freeswitch/sounds/consent.wav",
    help: "For the prompt announcement: the sound the PBX plays, as it names it — FreeSWITCH: a file path or URL; " +
      "Asterisk: a sound name or path without extension (e.g. custom/consent). No spaces." },
  { name: "announcement_after_resume", label: "Announce again after a pause",
    help: "On: the customer hears the announcement again when a paused recording resumes." },
];

export const onOff = (v) => (typeof v === "boolean" ? (v ? "on" : "off") : String(v));

export function sourceText(src) {
  if (!src) return "";
  if (src.startsWith("number:")) return `number override ${src.slice(7)}`;
  if (src === "account") return "account setting";
  if (src === "default") return "product default";
  if (src === "dialplan") return "dialplan hook";
  if (src.startsWith("on_demand:")) return `recorded on demand by ${src.slice(10).replace(/^agent:/, "agent ")}`;
  if (src.startsWith("direction:")) return `${src.slice(10)} calls are not recorded`;
  return src;
}

export const settingLabel = (name) => (SETTINGS.find((s) => s.name === name) || { label: name }).label;
