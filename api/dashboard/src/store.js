// The organisation's runs, held in memory: loaded page by page from
// GET /api/jobs, then kept current by WS /api/stream from the position the
// first page reflects. Views subscribe and redraw at most once a frame.
import { api, wsURL, session } from "./api.js";
import { perFrame } from "./util.js";

export const runs = new Map(); // run_id → row
export const conn = { live: false, position: 0, loaded: false, error: "" };
const subs = new Set();
const notify = perFrame(() => { for (const f of subs) f(); });
export function subscribe(f) { subs.add(f); return () => subs.delete(f); }

let ws = null, retry = 0, refetch = 0;

// e40 maps a status onto the SEMI E40 process-job state, as
// docs/lifecycle.md does (the list's rows carry the server's own e40_state;
// stream updates move it on the same way).
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

function fromJob(j) {
  const r = j.recipe_data || {};
  const md = j.metadata || {};
  return {
    run_id: j.run_id, job_id: j.id, kind: j.job_type === "rtp" ? "rtp" : "ion", status: j.status, e40: j.e40_state,
    processing: j.e40_state === "PROCESSING", progress: j.progress, step: j.current_step, user: j.user_id,
    tool: md.tool_id || r.tool_id || "", lot: r.lot_id || "", wafer: r.wafer_id || "", created: j.created_at,
    alerts: md.spc_alerts_count || 0, known: true,
  };
}

export async function load() {
  runs.clear();
  conn.loaded = false;
  let page = 1, first = 0;
  for (;;) {
    const { body, position } = await api(`/api/jobs?page_size=100&page=${page}`);
    if (page === 1) first = position;
    for (const j of body.jobs) if (!runs.has(j.run_id)) runs.set(j.run_id, fromJob(j));
    if (!body.has_more) break;
    page++;
    if (page % 5 === 0) notify();
  }
  conn.position = first; // the stream resumes right after what the first page reflects
  conn.loaded = true;
  notify();
  connect();
}

// refreshNewest re-reads the newest page when the stream named runs the
// list has not seen (it tells their kind and tool, not their user or lot);
// at most every two seconds, so a burst of creations costs one read.
function refreshNewest() {
  if (refetch) return;
  refetch = setTimeout(async () => {
    refetch = 0;
    try {
      const { body } = await api("/api/jobs?page_size=100&page=1");
      for (const j of body.jobs) {
        const cur = runs.get(j.run_id);
        if (!cur || !cur.known) runs.set(j.run_id, { ...fromJob(j), ...(cur ? pick(cur) : {}), known: true });
      }
      notify();
    } catch { /* the next unknown run asks again */ }
  }, 2000);
}

function pick(cur) {
  const out = {};
  for (const k of ["status", "progress", "step", "e40", "processing", "alerts"]) if (cur[k] !== undefined) out[k] = cur[k];
  return out;
}

export function apply(msg) {
  if (msg.position) conn.position = Math.max(conn.position, msg.position);
  if (!msg.run_id) return;
  const d = msg.data || {};
  let cur = runs.get(msg.run_id);
  if (!cur) {
    cur = { run_id: msg.run_id, kind: msg.run_id.startsWith("RTP-") ? "rtp" : "ion", status: "queued", progress: 0,
      step: "", alerts: 0, created: msg.timestamp, tool: d.tool_id || "", lot: "", user: "", known: false };
    runs.set(msg.run_id, cur);
    refreshNewest();
  }
  const prev = cur.status;
  if (d.status) cur.status = d.status;
  if (d.progress !== undefined) cur.progress = d.progress;
  if (d.current_step) cur.step = d.current_step;
  if (d.job_id) cur.job_id = d.job_id;
  if (msg.type === "alert") cur.alerts = (cur.alerts || 0) + 1;
  if (msg.event === "RunStarted") cur.processing = false;
  if (msg.type === "telemetry") cur.processing = true;
  cur.e40 = e40(cur.status, cur.processing, prev === "queued");
  notify();
}

function connect() {
  if (ws) { const old = ws; ws = null; closeSocket(old); }
  if (!session.token) return;
  const sock = new WebSocket(wsURL("/api/stream", { token: session.token, from: String(conn.position + 1) }));
  ws = sock;
  sock.onopen = () => { conn.live = true; retry = 0; notify(); };
  sock.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.type === "connected" || msg.type === "caught_up") { notify(); return; }
    apply(msg);
  };
  sock.onclose = () => {
    conn.live = false;
    notify();
    if (ws === sock) setTimeout(connect, Math.min(10000, 1000 * 2 ** retry++)); // resume from the last position seen
  };
}

export function stop() {
  if (ws) { const old = ws; ws = null; closeSocket(old); }
  runs.clear();
  conn.loaded = false;
}

// closeSocket closes a socket without the browser's "closed before the
// connection is established" error.
export function closeSocket(s) {
  if (!s) return;
  s.onmessage = null;
  if (s.readyState === WebSocket.CONNECTING) s.onopen = () => s.close(1000);
  else s.close(1000);
}
