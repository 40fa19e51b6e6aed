// Spectra dashboard: the organisation's runs, live from WS /api/stream
// (replayed, then live), and one run in detail from its own stream.
"use strict";

const state = { token: "", runs: new Map(), ws: null, runWS: null, selected: null, position: 0, series: [] };
const $ = (id) => document.getElementById(id);

function fromHash(key) {
  return new URLSearchParams(location.hash.slice(1)).get(key) || "";
}

function tokenFromPage() {
  return fromHash("token") || localStorage.getItem("spectra.token") || "";
}

// e40 maps a status (and whether telemetry has flowed) onto the SEMI E40
// process-job state, as docs/lifecycle.md does.
function e40(status, processing, wasQueued) {
  switch (status) {
    case "queued": case "retrying": return "QUEUED";
    case "running": return processing ? "PROCESSING" : "SETTING UP";
    case "paused": return "PAUSED";
    case "completed": return "PROCESS COMPLETE";
    case "failed": return "ABORTED";
    case "cancelled": return wasQueued ? "REMOVED" : "ABORTED";
  }
  return "";
}

function wsURL(path, params) {
  const u = new URL(path, location.href);
  u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.toString();
}

async function api(path) {
  const r = await fetch(path, { headers: { Authorization: "Bearer " + state.token } });
  if (!r.ok) throw new Error(path + ": " + r.status);
  return { body: await r.json(), position: Number(r.headers.get("X-Spectra-Position") || 0) };
}

function kindOf(runID) { return runID.startsWith("RTP-") ? "rtp" : "ion"; }

function upsert(runID, patch) {
  const cur = state.runs.get(runID) || { run_id: runID, kind: kindOf(runID), status: "queued", progress: 0, current_step: "", alerts: 0, e40: "" };
  Object.assign(cur, patch);
  state.runs.set(runID, cur);
  return cur;
}

function render() {
  const body = $("runs").querySelector("tbody");
  const rows = [...state.runs.values()].sort((a, b) => (a.created < b.created ? 1 : -1));
  body.replaceChildren(...rows.map((r) => {
    const tr = document.createElement("tr");
    tr.dataset.run = r.run_id;
    if (r.run_id === state.selected) tr.className = "selected";
    const cells = [r.run_id, r.kind, r.status, r.e40 || "", (r.progress || 0).toFixed(1) + " %", r.current_step || "", String(r.alerts || 0)];
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      td.textContent = c;
      if (i === 2) td.className = "status-" + r.status;
      tr.appendChild(td);
    });
    tr.onclick = () => select(r.run_id);
    return tr;
  }));
  $("empty").hidden = rows.length > 0;
  $("position").textContent = state.position ? "at position " + state.position : "";
}

// apply folds one stream message into the runs table.
function apply(msg) {
  if (msg.position) state.position = Math.max(state.position, msg.position);
  if (!msg.run_id) return;
  const d = msg.data || {};
  const patch = {};
  for (const k of ["status", "progress", "current_step"]) if (d[k] !== undefined) patch[k] = d[k];
  const prev = state.runs.get(msg.run_id) || {};
  if (msg.type === "alert") patch.alerts = (prev.alerts || 0) + 1;
  if (msg.event === "RunRequested") patch.created = msg.timestamp;
  if (msg.event === "RunStarted") patch.processing = false;
  if (msg.type === "telemetry") patch.processing = true;
  const status = patch.status || prev.status;
  if (status) patch.e40 = e40(status, patch.processing ?? prev.processing, prev.status === "queued");
  upsert(msg.run_id, patch);
}

async function loadRuns() {
  const { body: page, position } = await api("/api/jobs?page_size=100");
  for (const j of page.jobs) {
    upsert(j.run_id, { status: j.status, progress: j.progress, current_step: j.current_step, e40: j.e40_state,
      processing: j.e40_state === "PROCESSING",
      created: j.created_at, alerts: (j.metadata && j.metadata.spc_alerts_count) || 0 });
  }
  state.position = position; // the stream resumes right after what the list reflects
  render();
}

function connect() {
  if (state.ws) state.ws.close();
  const ws = new WebSocket(wsURL("/api/stream", { token: state.token, from: String(state.position + 1) }));
  state.ws = ws;
  ws.onopen = () => { $("conn").textContent = "live"; $("conn").className = "pill on"; };
  ws.onclose = () => {
    $("conn").textContent = "offline"; $("conn").className = "pill off";
    if (state.ws === ws) setTimeout(connect, 2000); // resume from the last position seen
  };
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "connected" || msg.type === "caught_up") { render(); return; }
    apply(msg);
    render();
  };
}

// select follows one run from its own stream: progress, telemetry chart,
// alerts and results.
function select(runID) {
  state.selected = runID;
  state.series = [];
  $("detail").hidden = false;
  document.querySelector("main").classList.add("split");
  render();
  $("detail-title").textContent = runID;
  $("alerts").replaceChildren();
  $("results").textContent = "—";
  if (state.runWS) state.runWS.close();
  const kind = kindOf(runID);
  const ws = new WebSocket(wsURL(`/api/${kind}/stream/${runID}`, { token: state.token }));
  state.runWS = ws;
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    const d = msg.data || {};
    if (d.progress !== undefined) $("detail-bar").style.width = d.progress + "%";
    if (d.current_step) $("detail-step").textContent = d.current_step + (d.status ? " — " + d.status : "");
    if (msg.type === "telemetry") {
      const t = d.time_s || [];
      const [a, b] = kind === "ion" ? ["beam_current_ma", "integrated_dose_atoms_cm2"] : ["setpoint_temp_c", "measured_temp_c"];
      t.forEach((ts, i) => state.series.push([ts, (d[a] || [])[i], (d[b] || [])[i]]));
      $("legend").textContent = `${a} (blue) and ${b} (orange) over time_s`;
      draw(kind);
    } else if (msg.type === "alert") {
      const li = document.createElement("li");
      li.className = d.severity || "";
      li.textContent = `${d.source || ""} ${d.rule || ""} ${d.parameter || ""}: ${d.message || ""}`;
      $("alerts").appendChild(li);
    } else if (msg.type === "completed" || msg.type === "error" || msg.type === "cancelled") {
      $("results").textContent = JSON.stringify(d, null, 2);
      $("detail-step").textContent = msg.type;
    }
  };
}

function draw(kind) {
  const c = $("chart"), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  const s = state.series;
  if (s.length < 2) return;
  const t0 = s[0][0], t1 = s[s.length - 1][0] || 1;
  const line = (idx, color, sameScale) => {
    const vals = s.map((p) => p[idx]).filter((v) => v !== undefined && v !== null);
    let lo = Math.min(...vals), hi = Math.max(...vals);
    if (sameScale) { lo = Math.min(lo, ...s.map((p) => p[1])); hi = Math.max(hi, ...s.map((p) => p[1])); }
    if (hi === lo) hi = lo + 1;
    g.strokeStyle = color; g.lineWidth = 1.5; g.beginPath();
    s.forEach((p, i) => {
      const x = 10 + ((p[0] - t0) / (t1 - t0 || 1)) * (c.width - 20);
      const y = c.height - 10 - ((p[idx] - lo) / (hi - lo)) * (c.height - 20);
      i ? g.lineTo(x, y) : g.moveTo(x, y);
    });
    g.stroke();
  };
  line(1, "#2f6fdf", false);
  line(2, "#e07b24", kind === "rtp");
}

async function start() {
  state.token = tokenFromPage();
  $("token").value = state.token;
  if (!state.token) return;
  localStorage.setItem("spectra.token", state.token);
  try {
    await loadRuns();
    connect();
    if (fromHash("run")) select(fromHash("run"));
  } catch (e) {
    $("empty").textContent = "Cannot load runs: " + e.message;
  }
}

$("auth").onsubmit = (e) => {
  e.preventDefault();
  location.hash = "token=" + encodeURIComponent($("token").value.trim());
  start();
};
start();
