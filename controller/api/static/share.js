// The shared-recording player: knows only its own link (/share/<token>) and that link's audio.
// It never sees an API token, other recordings or the API.

const $ = (id) => document.getElementById(id);
const base = location.pathname.replace(/\/+$/, "");

function row(k, v) {
  const div = document.createElement("div");
  const dt = document.createElement("dt");
  const dd = document.createElement("dd");
  dt.textContent = k;
  dd.textContent = v;
  div.append(dt, dd);
  return div;
}

const fmtDur = (ms) => {
  if (ms == null) return "–";
  const s = Math.floor(ms / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
};

async function load() {
  const resp = await fetch(`${base}/info`, { credentials: "omit", cache: "no-store" });
  const data = await resp.json().catch(() => null);
  if (!resp.ok) {
    $("s-error").textContent = (data && data.error && data.error.message) || `This link does not work (${resp.status}).`;
    $("s-audio").hidden = true;
    return;
  }
  $("s-meta").replaceChildren(
    row("Call started", new Date(data.started_at).toLocaleString()),
    row("Length", fmtDur(data.duration_ms)),
    row("Shared by", data.shared_by),
    row("Link expires", new Date(data.expires_at).toLocaleString()),
  );
  $("s-audio").src = `${base}/audio`;
  const dl = $("s-download");
  dl.hidden = !data.allow_download;
  if (data.allow_download) dl.href = `${base}/audio?download=1`;
}

load().catch((err) => { $("s-error").textContent = `Could not load the recording: ${err.message}`; });
