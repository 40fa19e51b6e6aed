// The runs list's current page, read from the server one page at a time
// (GET /api/runs with the filters and a cursor: signing in costs one read
// however many runs the organisation has), and kept current by one
// WS /api/stream opened at sign-in. Messages for the rows shown update
// them; a run created, or one changing state under a state filter, has
// the first page read again, at most every two seconds. Views subscribe
// and redraw at most once a frame.
import { api, wsURL, session } from "./api.js";
import { perFrame } from "./util.js";

export const PAGE = 50;
export const list = {
  filters: { status: "", kind: "", tool: "", lot: "" },
  cursors: [""], // the cursor of each page read so far: [0] is the newest
  rows: [], // the page shown, newest first
  total: 0, // runs matching the filters
  next: "", // the next (older) page's cursor; "" on the last
  tools: new Set(), // tools seen, for the filter's suggestions
};
export const conn = { live: false, position: 0, loaded: false, error: "" };
const byId = new Map(); // run_id → row of the page shown
const subs = new Set();
const notify = perFrame(() => { for (const f of subs) f(); });
export function subscribe(f) { subs.add(f); return () => subs.delete(f); }
// onMessage hands every message of the organisation's stream to f (the lot
// view follows its wafers' runs by it).
const msgSubs = new Set();
export function onMessage(f) { msgSubs.add(f); return () => msgSubs.delete(f); }

let ws = null, retry = 0, refetch = 0, reads = 0;

// e40 maps a status onto the SEMI E40 process-job state, as
// docs/lifecycle.md does (rows carry the server's own e40_state; stream
// updates move it on the same way).
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

function fromRow(r) {
  if (r.tool_id) list.tools.add(r.tool_id);
  return {
    run_id: r.run_id, job_id: r.job_id, kind: r.kind, status: r.status, e40: r.e40_state,
    processing: r.e40_state === "PROCESSING", progress: r.progress, step: r.current_step, user: r.user_id,
    tool: r.tool_id || "", lot: r.lot_id || "", wafer: r.wafer_id || "", created: r.created_at,
    alerts: r.spc_alerts_count || 0, revision: r.revision || 0,
  };
}

// read fetches the page the filters and cursor name. A newer read
// overtakes an older one still in flight.
export async function read() {
  const mine = ++reads;
  const f = list.filters;
  const q = new URLSearchParams({ limit: String(PAGE) });
  if (f.status) q.set("status", f.status);
  if (f.kind) q.set("kind", f.kind);
  if (f.tool) q.set("tool_id", f.tool);
  if (f.lot) q.set("lot_id", f.lot);
  const cur = list.cursors[list.cursors.length - 1];
  if (cur) q.set("cursor", cur);
  const { body, position } = await api("/api/runs?" + q);
  if (mine !== reads) return;
  list.rows = body.runs.map(fromRow);
  byId.clear();
  for (const r of list.rows) byId.set(r.run_id, r);
  list.total = body.total;
  list.next = body.next_cursor || "";
  conn.error = "";
  if (!conn.loaded) {
    conn.loaded = true;
    conn.position = position; // the stream resumes right after what this page reflects
    connect();
  }
  notify();
}

// filter sets the filters and goes back to the newest page.
export function filter(f) {
  Object.assign(list.filters, f);
  list.cursors = [""];
  return reread();
}

export function older() {
  if (!list.next) return Promise.resolve();
  list.cursors.push(list.next);
  return reread();
}

export function newer() {
  if (list.cursors.length > 1) list.cursors.pop();
  return reread();
}

export const page = () => list.cursors.length - 1;

function reread() {
  return read().catch((e) => { conn.error = e.message; notify(); });
}

export function load() {
  stop();
  return read();
}

// soon re-reads the page shown (the newest only: an older page keeps its
// runs until the user moves), at most every two seconds, so a burst of
// creations costs one read.
function soon() {
  if (refetch || page() !== 0) return;
  refetch = setTimeout(() => { refetch = 0; reread(); }, 2000);
}

export function apply(msg) {
  if (msg.position) conn.position = Math.max(conn.position, msg.position);
  if (!msg.run_id) return;
  const d = msg.data || {};
  const cur = byId.get(msg.run_id);
  if (!cur) {
    if (msg.event === "RunRequested" || (list.filters.status && d.status)) soon();
    return;
  }
  if (msg.revision !== undefined && msg.revision <= cur.revision) return; // the page read already holds it
  if (msg.revision !== undefined) cur.revision = msg.revision;
  const prev = cur.status;
  if (d.status) cur.status = d.status;
  if (d.progress !== undefined) cur.progress = d.progress;
  if (d.current_step) cur.step = d.current_step;
  if (d.job_id) cur.job_id = d.job_id;
  if (msg.type === "alert") cur.alerts = (cur.alerts || 0) + 1;
  if (msg.event === "RunStarted") cur.processing = false;
  if (msg.type === "telemetry") cur.processing = true;
  cur.e40 = e40(cur.status, cur.processing, prev === "queued");
  if (list.filters.status && cur.status !== prev) soon();
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
    for (const f of msgSubs) f(msg);
  };
  sock.onclose = () => {
    conn.live = false;
    notify();
    if (ws === sock) setTimeout(connect, Math.min(10000, 1000 * 2 ** retry++)); // resume from the last position seen
  };
}

export function stop() {
  if (ws) { const old = ws; ws = null; closeSocket(old); }
  clearTimeout(refetch);
  refetch = 0;
  reads++;
  list.rows = [];
  byId.clear();
  list.cursors = [""];
  list.total = 0;
  list.next = "";
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
