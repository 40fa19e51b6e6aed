// Small DOM and formatting helpers shared by the views.

// h builds an element: h("td", {class: "num", onclick: f}, "text", child…).
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k in el && k !== "list") el[k] = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const $ = (sel, root = document) => root.querySelector(sel);

// num formats a measured value: scientific for doses and pressures,
// four significant digits otherwise.
export function num(v, digits = 4) {
  if (v === null || v === undefined || v === "") return "—";
  if (typeof v !== "number") return String(v);
  if (!isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) return v.toExponential(digits - 1);
  return Number(v.toPrecision(digits)).toString();
}

export function ago(ts) {
  if (!ts) return "";
  const s = Math.max(0, (Date.now() - Date.parse(ts)) / 1000);
  if (s < 60) return Math.floor(s) + " s ago";
  if (s < 3600) return Math.floor(s / 60) + " min ago";
  if (s < 86400) return Math.floor(s / 3600) + " h ago";
  return Math.floor(s / 86400) + " d ago";
}

export function time(ts) {
  if (!ts) return "";
  const d = new Date(ts);
  return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

// throttle runs f at most once per animation frame, however often it is asked.
export function perFrame(f) {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; f(); });
  };
}

export function statusPill(status) {
  return h("span", { class: "pill status-" + status, dataset: { status } }, status || "—");
}

export function progressBar(p) {
  const v = Math.max(0, Math.min(100, Number(p) || 0));
  return h("div", { class: "bar", title: v.toFixed(1) + " %" },
    h("div", { style: "width:" + v + "%" }), h("span", {}, v.toFixed(0) + " %"));
}
