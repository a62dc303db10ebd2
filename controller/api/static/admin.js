// The administrator's screens: recording settings, numbers (override or inherit, and the "why" box),
// numbering plan with a classify tester, and the audit log. Saves send the version they loaded
// (If-Match); a 409 means someone else saved first: the current values are shown for review.

import { $, api, el, fmtTime, onOff, SETTINGS, settingLabel, sourceText } from "./common.js";
import { loadWebhooks } from "./webhooks.js";

const adm = { settings: null, numbers: [], plan: null, auditBefore: null, roles: [] };
const account = (id) => encodeURIComponent(($(id).value || "main").trim());
const ifMatch = (version) => ({ "If-Match": `"${version}"` });

const SCREENS = {
  settings: [() => loadSettings(), "settings-error"],
  numbers: [() => loadNumbers(), "num-error"],
  numbering: [() => loadPlan(), "plan-error"],
  audit: [() => loadAudit(false), "audit-error"],
  access: [() => loadAccess(), "user-error"],
  webhooks: [() => loadWebhooks(), "hook-error"],
};

export function showAdminScreen(name) {
  const [load, errorId] = SCREENS[name] || [];
  if (load) load().catch((err) => { $(errorId).textContent = err.message; });
}

// ---------- share link lifetimes ----------
async function loadSharing() {
  const view = await api("GET", "/api/v1/sharing");
  adm.sharing = view;
  $("sharing-default").value = String(view.default_hours);
  $("sharing-max").value = String(view.max_hours);
}

async function saveSharing(e) {
  e.preventDefault();
  $("sharing-error").textContent = "";
  const body = { default_hours: Number($("sharing-default").value), max_hours: Number($("sharing-max").value) };
  try {
    adm.sharing = await api("PUT", "/api/v1/sharing", body, adm.sharing ? ifMatch(adm.sharing.version) : {});
    $("sharing-status").textContent = `Saved ${new Date().toLocaleTimeString()}.`;
  } catch (err) {
    if (err.status === 409) await loadSharing();
    $("sharing-error").textContent = err.status === 409 ? "Someone else changed these after you opened them; their values are shown." : err.message;
  }
}

// ---------- recording settings ----------
async function loadSettings() {
  loadSharing().catch((err) => { $("sharing-error").textContent = err.message; });
  $("settings-error").textContent = "";
  $("settings-status").textContent = "";
  const asked = account("set-account");
  try {
    const view = await api("GET", `/api/v1/accounts/${asked}/settings`);
    if (asked === account("set-account")) renderSettings(view);  // a newer load wins
  } catch (err) {
    if (err.status !== 404) throw err;
    if (asked !== account("set-account")) return;
    renderSettings(null);
    $("settings-status").textContent = "New account: saving creates it.";
  }
}

function renderSettings(view) {
  adm.settings = view;
  $("settings-form").dataset.account = account("set-account");  // whose values the form shows
  const values = view ? view.settings : {};
  const defaults = view ? view.defaults : {};
  $("settings-form").replaceChildren(...SETTINGS.map((s) => {
    const value = values[s.name] ?? defaults[s.name];
    let input;
    if (s.number) {
      input = el("input", { type: "number", name: s.name, min: String(s.min ?? 1), max: String(s.max ?? 36500), value: value ?? "", id: `set-${s.name}` });
    } else if (s.choices) {
      input = el("select", { name: s.name, id: `set-${s.name}` },
        ...s.choices.map(([v, label]) => el("option", { value: v, selected: value === v }, label)));
    } else if (s.text) {
      input = el("input", { type: "text", name: s.name, id: `set-${s.name}`, value: value ?? "", maxlength: "255", placeholder: s.placeholder || "" });
    } else {
      input = el("input", { type: "checkbox", name: s.name, id: `set-${s.name}`, checked: value !== false });
    }
    const src = view ? view.sources[s.name] : "default";
    const eff = view ? `now ${onOff(values[s.name])} (${sourceText(src)}${src === "account" ? `; default ${onOff(defaults[s.name])}` : ""})` : "";
    return el("div", { class: "setting", "data-field": s.name },
      el("label", { for: `set-${s.name}`, class: "setting-label" }, s.label),
      el("div", { class: "setting-control" }, input, el("span", { class: "muted small effective" }, eff)),
      el("p", { class: "muted small help" }, s.help),
      el("p", { class: "error field-error" }));
  }));
}

async function saveSettings(e) {
  e.preventDefault();
  $("settings-error").textContent = "";
  for (const p of document.querySelectorAll("#settings-form .field-error")) p.textContent = "";
  const body = {};
  for (const s of SETTINGS) {
    const input = $(`set-${s.name}`);
    if (s.number) body[s.name] = input.value === "" ? null : Number(input.value);
    else if (s.choices || s.text) body[s.name] = input.value;
    else body[s.name] = input.checked;
  }
  const headers = adm.settings ? ifMatch(adm.settings.version) : {};
  try {
    renderSettings(await api("PUT", `/api/v1/accounts/${account("set-account")}/settings`, body, headers));
    $("settings-status").textContent = `Saved ${new Date().toLocaleTimeString()}. New calls use it now.`;
  } catch (err) {
    if (err.status === 409 && err.current) {
      renderSettings(err.current);
      $("settings-error").textContent = "Someone else saved these settings after you opened them. Their values are shown now — review and save again.";
    } else {
      showFieldError("#settings-form", err, "settings-error");
    }
  }
}

function showFieldError(formSel, err, fallbackId) {
  const box = err.field && document.querySelector(`${formSel} [data-field="${err.field}"] .field-error`);
  if (box) box.textContent = err.message;
  else $(fallbackId).textContent = err.message;
}

// ---------- numbers ----------
async function loadNumbers() {
  $("num-error").textContent = "";
  let data;
  const asked = account("num-account");
  try {
    data = await api("GET", `/api/v1/accounts/${asked}/numbers`);
    if (asked !== account("num-account")) return;  // a newer load wins
  } catch (err) {
    if (err.status === 404) { $("num-body").replaceChildren(); $("num-error").textContent = "No such account (create it under Recording settings)."; return; }
    throw err;
  }
  adm.numbers = data.numbers;
  $("num-head").replaceChildren(el("th", {}, "Number"), ...SETTINGS.map((s) => el("th", {}, s.label)), el("th", {}, ""));
  $("num-body").replaceChildren(...data.numbers.map((n) => numberRow(n, data.account_settings)));
  $("num-empty").hidden = data.numbers.length > 0;
}

function numberRow(n, base) {
  const cells = SETTINGS.map((s) => {
    const own = n.override[s.name];
    const inherited = base[s.name];
    let control;
    if (s.number) {
      control = el("input", { type: "number", min: String(s.min ?? 1), max: String(s.max ?? 36500), size: "5", class: own == null ? "inherit" : "",
        name: s.name, value: own ?? "", placeholder: `${inherited} (inherited)`, "aria-label": `${s.label} for ${n.number}` });
      control.addEventListener("input", () => control.classList.toggle("inherit", control.value === ""));
    } else if (s.text) {
      control = el("input", { type: "text", size: "12", maxlength: "255", class: own == null ? "inherit" : "",
        name: s.name, value: own ?? "", placeholder: `${inherited || "–"} (inherited)`, "aria-label": `${s.label} for ${n.number}` });
      control.addEventListener("input", () => control.classList.toggle("inherit", control.value === ""));
    } else if (s.choices) {
      control = el("select", { name: s.name, class: own == null ? "inherit" : "", "aria-label": `${s.label} for ${n.number}` },
        el("option", { value: "", selected: own == null }, `inherit (${inherited})`),
        ...s.choices.map(([v, label]) => el("option", { value: v, selected: own === v }, label)));
      control.addEventListener("change", () => control.classList.toggle("inherit", control.value === ""));
    } else {
      control = el("select", { name: s.name, class: own == null ? "inherit" : "", "aria-label": `${s.label} for ${n.number}` },
        el("option", { value: "", selected: own == null }, `inherit (${onOff(inherited)})`),
        el("option", { value: "true", selected: own === true }, "on"),
        el("option", { value: "false", selected: own === false }, "off"));
      control.addEventListener("change", () => control.classList.toggle("inherit", control.value === ""));
    }
    return el("td", { "data-field": s.name, title: `effective: ${onOff(n.effective[s.name])} — ${sourceText(n.sources[s.name])}` }, control);
  });
  const save = el("button", { type: "button", class: "small-btn" }, "Save");
  const tr = el("tr", { "data-number": n.number }, el("td", { class: "mono" }, n.number), ...cells, el("td", {}, save));
  save.addEventListener("click", () => saveNumber(n, tr));
  return tr;
}

async function saveNumber(n, tr) {
  $("num-error").textContent = "";
  const override = {};
  for (const s of SETTINGS) {
    const c = tr.querySelector(`[name="${s.name}"]`);
    if (c.value === "") continue;
    override[s.name] = s.number ? Number(c.value) : (s.choices || s.text) ? c.value : c.value === "true";
  }
  try {
    await api("PUT", `/api/v1/numbers/${encodeURIComponent(n.number)}/override`, { override }, ifMatch(n.version));
    await loadNumbers();
    $("num-error").textContent = "";
    const row = document.querySelector(`tr[data-number="${n.number}"]`);
    if (row) row.classList.add("saved");
  } catch (err) {
    if (err.status === 409) {
      await loadNumbers();
      $("num-error").textContent = `Someone else changed ${n.number} after you opened it. Its current values are shown — review and save again.`;
    } else {
      $("num-error").textContent = `${n.number}: ${err.message}`;
    }
  }
}

async function addNumber(e) {
  e.preventDefault();
  const number = new FormData(e.target).get("number").trim();
  try {
    await api("PUT", `/api/v1/numbers/${encodeURIComponent(number)}/override`, { account: decodeURIComponent(account("num-account")), override: {} });
    e.target.reset();
    await loadNumbers();
  } catch (err) {
    $("num-error").textContent = err.message;
  }
}

async function explainCall(e) {
  e.preventDefault();
  $("why-error").textContent = "";
  const params = new URLSearchParams();
  for (const [k, v] of new FormData(e.target).entries()) if (v) params.set(k, v);
  params.set("account", decodeURIComponent(account("num-account")));
  try {
    const out = await api("GET", `/api/v1/policy/explain?${params}`);
    const items = [
      el("p", { class: "why-head" }, el("b", {}, out.record ? "Recorded" : "Not recorded"),
        ` — ${sourceText(out.sources.record)} (account ${out.account}${out.number ? `, number ${out.number}` : ""})`),
      el("ul", {}, ...Object.entries(out.settings).map(([k, v]) =>
        el("li", { "data-field": k }, `${settingLabel(k)} = `, el("b", {}, onOff(v)), el("span", { class: "muted" }, ` — ${sourceText(out.sources[k])}`)))),
    ];
    if (out.transfer) {
      const t = out.transfer;
      items.push(el("p", { class: "why-transfer", "data-testid": "why-transfer" },
        `Transfer to ${t.target}: ${t.target_class.replace("_", " ")}${t.matched_pattern ? ` (pattern ${t.matched_pattern})` : ""} → `,
        el("b", {}, t.stop_recording ? "recording stops" : "recording continues"), ` — ${t.decided_by}`));
    }
    $("why-out").replaceChildren(...items);
    $("why-out").hidden = false;
  } catch (err) {
    $("why-out").hidden = true;
    $("why-error").textContent = err.message;
  }
}

// ---------- numbering plan ----------
const PLAN_KEYS = ["internal", "ring_groups", "private_extensions"];

async function loadPlan() {
  $("plan-error").textContent = "";
  $("plan-status").textContent = "";
  let view;
  const asked = account("plan-account");
  try {
    view = await api("GET", `/api/v1/accounts/${asked}/numbering`);
    if (asked !== account("plan-account")) return;  // a newer load wins
  } catch (err) {
    if (err.status === 404) { $("plan-error").textContent = "No such account (create it under Recording settings)."; return; }
    throw err;
  }
  renderPlan(view);
}

function renderPlan(view) {
  adm.plan = view;
  const form = $("plan-form");
  for (const k of PLAN_KEYS) form.elements[k].value = view.plan[k].join("\n");
  $("plan-status").textContent = view.is_default ? "The default plan (2 to 5 digit numbers are internal) — save to set your own." : "";
}

async function savePlan(e) {
  e.preventDefault();
  $("plan-error").textContent = "";
  const form = $("plan-form");
  const body = {};
  for (const k of PLAN_KEYS) body[k] = form.elements[k].value.split("\n").map((l) => l.trim()).filter(Boolean);
  try {
    renderPlan(await api("PUT", `/api/v1/accounts/${account("plan-account")}/numbering`, body, adm.plan ? ifMatch(adm.plan.version) : {}));
    $("plan-status").textContent = `Saved ${new Date().toLocaleTimeString()}.`;
  } catch (err) {
    if (err.status === 409 && err.current) {
      renderPlan(err.current);
      $("plan-error").textContent = "Someone else saved the plan after you opened it. Their version is shown — review and save again.";
    } else {
      $("plan-error").textContent = err.message;
    }
  }
}

async function classifyNumber(e) {
  e.preventDefault();
  const number = new FormData(e.target).get("number");
  try {
    const out = await api("GET", `/api/v1/accounts/${account("plan-account")}/numbering/classify?number=${encodeURIComponent(number)}`);
    $("classify-out").replaceChildren(`${out.number} → `, el("b", { "data-testid": "class" }, out.class.replace("_", " ")),
      out.matched_pattern ? ` (matched ${out.matched_pattern})` : " (no pattern matched)",
      out.class === "external" ? " — a transfer here stops the recording when “continue on external transfer” is off." : " — transfers here never stop a recording.");
  } catch (err) {
    $("classify-out").textContent = err.message;
  }
}

// ---------- audit ----------
function changeText(entry) {
  const d = entry.detail || {};
  if (d.old || d.new) {
    const keys = [...new Set([...Object.keys(d.old || {}), ...Object.keys(d.new || {})])];
    if (!keys.length) return "no change";
    return keys.map((k) => `${settingLabel(k)}: ${JSON.stringify((d.old || {})[k] ?? "inherit")} → ${JSON.stringify((d.new || {})[k] ?? "inherit")}`).join("; ");
  }
  if (d.range !== undefined) return d.range ? `range ${d.range}` : "";
  if (d.created_by) return `link by ${d.created_by}`;
  if (d.share) return `link ${d.share}${d.expires_at ? `, expires ${fmtTime(d.expires_at)}` : ""}`;
  return "";
}

async function loadAudit(more) {
  const params = new URLSearchParams();
  for (const [k, v] of new FormData($("audit-form")).entries()) {
    if (!v) continue;
    params.set(k, k === "from" || k === "to" ? new Date(v).toISOString() : v);
  }
  params.set("limit", "50");
  if (more && adm.auditBefore) params.set("before", String(adm.auditBefore));
  const data = await api("GET", `/api/v1/audit?${params}`);
  const body = $("audit-body");
  if (!more) body.replaceChildren();
  for (const e of data.entries) {
    body.append(el("tr", { "data-audit-id": String(e.id) },
      el("td", {}, fmtTime(e.at)), el("td", {}, e.actor), el("td", { class: "mono" }, e.action),
      el("td", { class: "mono" }, e.target), el("td", { class: "mono" }, e.remote), el("td", { class: "change" }, changeText(e))));
  }
  adm.auditBefore = data.next_before;
  $("audit-more").hidden = !data.next_before;
  $("audit-empty").hidden = body.children.length > 0;
}

// ---------- users and roles ----------
const SCOPES = ["view", "listen", "download", "pause"];
const RIGHTS = ["view_settings", "settings", "users", "roles", "audit"];
const csv = (text) => text.split(",").map((x) => x.trim()).filter(Boolean);

async function loadAccess() {
  const [roles, users] = await Promise.all([
    api("GET", "/api/v1/roles").catch((err) => (err.status === 403 ? null : Promise.reject(err))),
    api("GET", "/api/v1/users").catch((err) => (err.status === 403 ? null : Promise.reject(err))),
  ]);
  adm.roles = roles ? roles.roles : [];
  for (const sel of document.querySelectorAll(".role-select")) {
    sel.replaceChildren(...adm.roles.map((r) => el("option", { value: r.name }, r.name)));
  }
  $("role-body").replaceChildren(...adm.roles.map(roleRow));
  $("user-body").replaceChildren(...(users ? users.users : []).map(userRow));
}

function roleRow(r) {
  const tr = el("tr", { "data-role": r.name }, el("td", {}, el("b", {}, r.name), r.builtin ? el("span", { class: "muted small" }, " built-in") : ""));
  for (const f of SCOPES) {
    tr.append(el("td", {}, el("input", { name: f, value: r[f], list: "scope-options", size: "10", "aria-label": `${f} scope of ${r.name}` })));
  }
  tr.append(el("td", { class: "rights" }, ...RIGHTS.map((x) => el("label", { class: "check-inline" },
    el("input", { type: "checkbox", name: `right-${x}`, checked: r.rights.includes(x) }), x.replace("_", " ")))));
  tr.append(el("td", {}, String(r.users ?? "")));
  const save = el("button", { type: "button", class: "small-btn" }, "Save");
  save.addEventListener("click", async () => {
    $("role-error").textContent = "";
    const body = { rights: RIGHTS.filter((x) => tr.querySelector(`[name="right-${x}"]`).checked) };
    for (const f of SCOPES) body[f] = tr.querySelector(`[name="${f}"]`).value.trim();
    try {
      await api("PUT", `/api/v1/roles/${encodeURIComponent(r.name)}`, body);
      await loadAccess();
      const row = document.querySelector(`tr[data-role="${r.name}"]`);
      if (row) row.classList.add("saved");
    } catch (err) { $("role-error").textContent = `${r.name}: ${err.message}`; }
  });
  tr.append(el("td", {}, save));
  return tr;
}

function userRow(u) {
  const role = el("select", { name: "role", "aria-label": `role of ${u.name}` },
    ...adm.roles.map((r) => el("option", { value: r.name, selected: r.name === u.role }, r.name)));
  const ext = el("input", { name: "agent_ext", value: u.agent_ext, size: "6", "aria-label": `extension of ${u.name}` });
  const groups = el("input", { name: "ring_groups", value: u.ring_groups.join(", "), size: "14", "aria-label": `ring groups of ${u.name}` });
  const enabled = el("input", { type: "checkbox", name: "enabled", checked: !u.disabled, "aria-label": `${u.name} enabled` });
  const save = el("button", { type: "button", class: "small-btn" }, "Save");
  const token = el("button", { type: "button", class: "ghost small-btn" }, "New token");
  const revoke = el("button", { type: "button", class: "ghost small-btn" }, "Revoke tokens");
  const tr = el("tr", { "data-user": u.name, class: u.disabled ? "disabled" : "" },
    el("td", {}, u.name), el("td", {}, role), el("td", {}, ext), el("td", {}, groups), el("td", {}, enabled),
    el("td", {}, String(u.active_tokens)), el("td", { class: "acts" }, save, token, revoke));
  const fail = (err) => { $("user-error").textContent = `${u.name}: ${err.message}`; };
  save.addEventListener("click", async () => {
    $("user-error").textContent = "";
    const body = { role: role.value, agent_ext: ext.value.trim(), ring_groups: csv(groups.value), disabled: !enabled.checked };
    try { await api("PUT", `/api/v1/users/${u.id}`, body); await loadAccess(); } catch (err) { fail(err); }
  });
  token.addEventListener("click", async () => {
    try { showToken(u.name, (await api("POST", `/api/v1/users/${u.id}/tokens`)).token); await loadAccess(); } catch (err) { fail(err); }
  });
  revoke.addEventListener("click", async () => {
    try {
      const detail = await api("GET", `/api/v1/users/${u.id}`);
      for (const t of detail.tokens.filter((x) => !x.revoked)) await api("DELETE", `/api/v1/users/${u.id}/tokens/${t.id}`);
      await loadAccess();
    } catch (err) { fail(err); }
  });
  return tr;
}

function showToken(name, token) {
  $("token-user").textContent = name;
  $("token-value").textContent = token;
  $("token-once").hidden = false;
}

async function createUser(e) {
  e.preventDefault();
  $("user-error").textContent = "";
  const f = new FormData(e.target);
  const body = { name: f.get("name").trim(), role: f.get("role") };
  if (f.get("agent_ext").trim()) body.agent_ext = f.get("agent_ext").trim();
  if (csv(f.get("ring_groups")).length) body.ring_groups = csv(f.get("ring_groups"));
  try {
    const out = await api("POST", "/api/v1/users", body);
    showToken(out.user.name, out.token);
    e.target.reset();
    await loadAccess();
  } catch (err) { $("user-error").textContent = err.message; }
}

async function createRole(e) {
  e.preventDefault();
  $("role-error").textContent = "";
  const name = new FormData(e.target).get("name").trim();
  try {
    await api("POST", "/api/v1/roles", { name });
    e.target.reset();
    await loadAccess();
  } catch (err) { $("role-error").textContent = err.message; }
}

function wire() {
  $("sharing-form").addEventListener("submit", saveSharing);
  $("user-add").addEventListener("submit", createUser);
  $("role-add").addEventListener("submit", createRole);
  $("settings-form").addEventListener("submit", saveSettings);
  $("set-account").addEventListener("change", () => loadSettings().catch((err) => { $("settings-error").textContent = err.message; }));
  $("num-account").addEventListener("change", () => loadNumbers().catch((err) => { $("num-error").textContent = err.message; }));
  $("plan-account").addEventListener("change", () => loadPlan().catch((err) => { $("plan-error").textContent = err.message; }));
  $("num-add").addEventListener("submit", addNumber);
  $("why-form").addEventListener("submit", explainCall);
  $("plan-form").addEventListener("submit", savePlan);
  $("classify-form").addEventListener("submit", classifyNumber);
  $("audit-form").addEventListener("submit", (e) => { e.preventDefault(); loadAudit(false).catch(() => {}); });
  $("audit-more").addEventListener("click", () => loadAudit(true).catch(() => {}));
}

wire();
