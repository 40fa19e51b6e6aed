// Spectra dashboard: sign-in, navigation and the views. Bundled by
// esbuild (`make dashboard`) into ../app.js and ../app.css.
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { h } from "./util.js";
import { session, restore, signIn, signOut, signOutReason, onSession, can } from "./api.js";
import * as store from "./store.js";
import * as runsView from "./runs.js";
import * as runView from "./run.js";
import * as lotView from "./lot.js";
import { mountSPC, mountR2R } from "./spc.js";
import { mountAudit } from "./audit.js";
import { mountCreate } from "./create.js";

const main = document.getElementById("view");
const nav = document.getElementById("nav");
const who = document.getElementById("who");
const conn = document.getElementById("conn");
let unmount = () => {};

const routes = [
  { path: "runs", label: "Runs", mount: runsView.mount },
  { path: "new", label: "New run", mount: mountCreate, when: () => can("ion:create_run") || can("rtp:create_run") },
  { path: "spc", label: "SPC", mount: mountSPC, when: () => can("spc:view") },
  { path: "r2r", label: "R2R", mount: mountR2R, when: () => can("spc:view") },
  { path: "audit", label: "Audit", mount: mountAudit, when: () => can("audit:view") },
];

function route() {
  unmount();
  unmount = () => {};
  main.replaceChildren();
  if (!session.me) { signInForm(); return; }
  const [, name, arg] = (location.hash.match(/^#\/([^/]*)\/?(.*)$/) || [null, "runs", ""]);
  for (const a of nav.querySelectorAll("a")) a.classList.toggle("active", a.dataset.view === name);
  if (name === "run" && arg) { unmount = runView.mount(main, decodeURIComponent(arg)); return; }
  if (name === "lot" && arg && can("lot:view")) { unmount = lotView.mount(main, decodeURIComponent(arg)); return; }
  const r = routes.find((x) => x.path === name && (!x.when || x.when()));
  if (!r) { location.hash = "#/runs"; return; }
  unmount = r.mount(main) || (() => {});
}

function drawNav() {
  nav.replaceChildren(...(session.me ? routes.filter((r) => !r.when || r.when()).map((r) =>
    h("a", { href: "#/" + r.path, id: "nav-" + r.path, dataset: { view: r.path } }, r.label)) : []));
  who.replaceChildren(...(session.me ? [h("span", { class: "pill role", id: "role" }, `${session.me.user_id} · ${session.me.role} · ${session.me.org_id}`),
    h("button", { id: "sign-out", onclick: () => signOut("Signed out.") }, "Sign out")] : []));
}

function signInForm() {
  const input = h("textarea", { id: "secret", rows: 3, placeholder: "an access token (spectra token --role viewer --org org-1) or an API key", autocomplete: "off", spellcheck: false });
  const err = h("p", { class: "notice error", id: "sign-in-error" }, signOutReason);
  main.append(h("section", { class: "card narrow", id: "sign-in" }, h("h2", {}, "Sign in"),
    h("form", { onsubmit: async (e) => {
      e.preventDefault();
      err.textContent = "";
      try { await signIn(input.value); } catch (x) { err.textContent = "Refused: " + x.message; }
    } }, input, h("button", { type: "submit" }, "Sign in")),
    h("p", { class: "muted" }, "Access tokens are used as they are; API keys are exchanged for a short-lived token that is refreshed before it expires. Neither is ever put in the address bar."),
    err));
}

function drawConn() {
  const text = store.conn.live ? "live" : "offline";
  if (conn.textContent === text) return;
  conn.textContent = text;
  conn.className = "pill " + (store.conn.live ? "on" : "off");
}
store.subscribe(drawConn);

let signedIn = false;
onSession(() => {
  drawNav();
  if (!!session.me !== signedIn) {
    signedIn = !!session.me;
    if (signedIn) store.load().catch((e) => console.warn("runs:", e.message));
    else store.stop();
    route();
  }
});
window.addEventListener("hashchange", route);
restore().then((ok) => { if (!ok) { drawNav(); route(); } });
