// Webhooks screen: endpoints per account (secret shown once), and each endpoint's dead letters with a
// redeliver button. Calls only /api/v1/webhooks routes; needs the settings right.
import { $, api, el, fmtTime } from "./common.js";

const EVENTS = ["recording.started", "recording.paused", "recording.resumed", "recording.stored",
  "recording.failed", "recording.purged"];

export async function loadWebhooks() {
  $("hook-error").textContent = "";
  const { webhooks } = await api("GET", "/api/v1/webhooks");
  const body = $("hook-body");
  body.replaceChildren(...webhooks.map(hookRow));
  $("hook-empty").hidden = webhooks.length > 0;
}

function hookRow(h) {
  const toggle = el("button", { type: "button", class: "ghost", onclick: () => change(h, { enabled: !h.enabled }) },
    h.enabled ? "Disable" : "Enable");
  const links = el("button", { type: "button", class: "ghost",
    title: "A short-lived download link in recording.stored events (needs [api] public_url)",
    onclick: () => change(h, { download_link: !h.download_link }) },
  h.download_link ? "Stop links" : "Send links");
  const dead = el("button", { type: "button", class: "ghost", onclick: () => loadDead(h) }, "Dead letters");
  const del = el("button", { type: "button", class: "ghost", onclick: () => removeHook(h) }, "Delete");
  return el("tr", { "data-hook": String(h.id) },
    el("td", {}, h.account), el("td", { class: "mono small" }, h.url), el("td", { class: "small" }, h.events.join(", ")),
    el("td", {}, h.enabled ? "on" : "off"), el("td", { "data-col": "links" }, h.download_link ? "yes" : "no"),
    el("td", {}, toggle, links, dead, del));
}

async function change(h, fields) {
  $("hook-error").textContent = "";
  try {
    await api("PUT", `/api/v1/webhooks/${h.id}`, fields);
    await loadWebhooks();
  } catch (err) { $("hook-error").textContent = err.message; }
}

async function removeHook(h) {
  if (!confirm(`Delete the webhook to ${h.url}? Its undelivered events are dropped.`)) return;
  try {
    await api("DELETE", `/api/v1/webhooks/${h.id}`);
    $("dead-card").hidden = true;
    await loadWebhooks();
  } catch (err) { $("hook-error").textContent = err.message; }
}

async function loadDead(h) {
  $("hook-error").textContent = "";
  try {
    const { deliveries } = await api("GET", `/api/v1/webhooks/${h.id}/deliveries?state=dead`);
    $("dead-url").textContent = h.url;
    $("dead-body").replaceChildren(...deliveries.map((d) => el("tr", { "data-delivery": String(d.id) },
      el("td", {}, fmtTime(d.created_at)), el("td", {}, d.event_type), el("td", { class: "mono small" }, d.recording_id),
      el("td", {}, String(d.attempts)), el("td", { class: "small" }, d.last_error),
      el("td", {}, el("button", { type: "button", class: "ghost", onclick: () => redeliver(h, d) }, "Redeliver")))));
    $("dead-empty").hidden = deliveries.length > 0;
    $("dead-card").hidden = false;
  } catch (err) { $("hook-error").textContent = err.message; }
}

async function redeliver(h, d) {
  try {
    await api("POST", `/api/v1/webhooks/${h.id}/deliveries/${d.id}/redeliver`);
    await loadDead(h);
  } catch (err) { $("hook-error").textContent = err.message; }
}

async function createHook(e) {
  e.preventDefault();
  $("hook-error").textContent = "";
  const f = new FormData(e.target);
  const body = { account: f.get("account").trim(), url: f.get("url").trim(), events: EVENTS.filter((x) => f.get(x)) };
  try {
    const out = await api("POST", "/api/v1/webhooks", body);
    $("hook-secret").textContent = out.secret;
    $("hook-secret-once").hidden = false;
    e.target.reset();
    await loadWebhooks();
  } catch (err) { $("hook-error").textContent = err.message; }
}

$("hook-add").replaceChildren(...$("hook-add").childNodes,
  ...EVENTS.map((x) => el("label", { class: "check" }, el("input", { type: "checkbox", name: x, checked: true }), x)),
  el("button", { type: "submit" }, "Add webhook"));
$("hook-add").addEventListener("submit", createHook);
