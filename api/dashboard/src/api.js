// The session (access token, who the caller is) and the calls to the API.
// The access token lives in sessionStorage, never in the page's URL: a
// #token=… link is read once at load and wiped from the address bar. An
// API key's refresh token never reaches this page at all: the server keeps
// it in an HttpOnly cookie sent only to /api/auth/refresh.
import { h } from "./util.js";

export const session = { token: "", cookie: false, exp: 0, me: null, timer: 0 };
const listeners = new Set();
export function onSession(f) { listeners.add(f); }
function changed() { for (const f of listeners) f(session); }

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error && body.error.message) || "HTTP " + status);
    this.status = status;
    this.body = body;
  }
  get fields() { return (this.body && this.body.error && this.body.error.fields) || []; }
}

export async function api(path, opts = {}) {
  const headers = { ...(opts.headers || {}) };
  if (session.token && !opts.anonymous) headers.Authorization = "Bearer " + session.token;
  let body = opts.body;
  if (body !== undefined && typeof body !== "string") {
    body = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  const r = await fetch(path, { method: opts.method || "GET", headers, body });
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!r.ok) throw new ApiError(r.status, data);
  return { body: data, position: Number(r.headers.get("X-Spectra-Position") || 0) };
}

export function can(perm) {
  return !!(session.me && session.me.permissions.includes(perm));
}

export function wsURL(path, params) {
  const u = new URL(path, location.href);
  u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== "") u.searchParams.set(k, v);
  return u.toString();
}

// download fetches an artifact with the caller's token and saves it: a
// plain link could not carry the Authorization header.
export async function download(uri, name) {
  const r = await fetch(uri, { headers: { Authorization: "Bearer " + session.token } });
  if (!r.ok) throw new ApiError(r.status, null);
  const url = URL.createObjectURL(await r.blob());
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function claims(token) {
  try {
    const p = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(p + "=".repeat((4 - (p.length % 4)) % 4)));
  } catch { return {}; }
}

function save() {
  sessionStorage.setItem("spectra.session", JSON.stringify({ token: session.token, cookie: session.cookie }));
}

// generation counts sign-outs: a refresh or sign-in still in flight when
// the user signs out must not sign the tab back in.
let generation = 0;

// adopt takes an access token once the server has said whose it is;
// cookie: a refresh cookie backs it.
async function adopt(token, cookie, gen = generation) {
  const me = (await api("/api/auth/me", { anonymous: true, headers: { Authorization: "Bearer " + token } })).body;
  if (gen !== generation) return;
  session.token = token;
  session.cookie = !!cookie;
  session.exp = (claims(token).exp || 0) * 1000;
  session.me = me;
  save();
  schedule();
  changed();
}

// schedule refreshes the access token a minute before it expires (or at
// 80 % of its life when that is shorter) while a refresh cookie backs it.
function schedule() {
  clearTimeout(session.timer);
  if (!session.cookie || !session.exp) return;
  const left = session.exp - Date.now();
  const at = Math.max(1000, Math.min(left - 60000, left * 0.8));
  session.timer = setTimeout(refresh, at);
}

export async function refresh() {
  const gen = generation;
  try {
    const { body } = await api("/api/auth/refresh", { method: "POST", anonymous: true }); // the cookie is the credential
    await adopt(body.access_token, true, gen);
  } catch (e) {
    if (gen === generation) signOut("Your session ended (" + e.message + "): sign in again.");
  }
}

// signIn takes what the user pasted: an access token (a JWT) as it is,
// anything else as an API key, exchanged through POST /api/auth/token.
export async function signIn(secret) {
  secret = secret.trim();
  if (/^[\w-]+\.[\w-]+\.[\w-]+$/.test(secret)) {
    await adopt(secret, "");
    return;
  }
  session.token = "";
  const { body } = await api("/api/auth/token", { method: "POST", body: { api_key: secret, refresh_cookie: true } });
  await adopt(body.access_token, true);
}

export let signOutReason = "";
export function signOut(reason) {
  generation++;
  clearTimeout(session.timer);
  // Revoke the session server-side and clear its cookie.
  if (session.cookie) fetch("/api/auth/refresh", { method: "DELETE", keepalive: true }).catch(() => {});
  Object.assign(session, { token: "", cookie: false, exp: 0, me: null });
  sessionStorage.removeItem("spectra.session");
  signOutReason = reason || "";
  changed();
}

// restore signs in from a #token= link (then removes it from the URL) or
// from this tab's stored session.
export async function restore() {
  const hp = new URLSearchParams(location.hash.replace(/^#\/?/, "").includes("token=") ? location.hash.slice(1) : "");
  let token = hp.get("token"), cookie = false;
  if (token) {
    const run = hp.get("run");
    const view = hp.get("view");
    history.replaceState(null, "", location.pathname + location.search + (run ? "#/run/" + run : view ? "#/" + view : "#/runs"));
  } else {
    try {
      const s = JSON.parse(sessionStorage.getItem("spectra.session") || "{}");
      token = s.token;
      cookie = !!s.cookie;
    } catch { /* nothing stored */ }
  }
  if (!token) return false;
  try {
    // A reloaded tab whose access token has (nearly) expired refreshes first.
    if (cookie && ((claims(token).exp || 0) * 1000) - Date.now() < 5000) {
      const { body } = await api("/api/auth/refresh", { method: "POST", anonymous: true });
      token = body.access_token;
    }
    await adopt(token, cookie);
    return true;
  } catch (e) {
    signOut("Stored credentials were refused (" + e.message + ").");
    return false;
  }
}
