// The runs list: one page of the organisation's runs, filtered and paged
// by the server (GET /api/runs), live from the store.
import { h, ago, statusPill, progressBar } from "./util.js";
import { list, conn, subscribe, filter, older, newer, page, read, PAGE } from "./store.js";

export function mount(root) {
  const f = list.filters;
  const sel = (name, options) => h("select", { name, onchange: (e) => filter({ [name]: e.target.value }) },
    options.map(([v, label]) => h("option", { value: v, selected: f[name] === v }, label)));
  // Tool and lot are exact ids: the filter applies when the field is left
  // or Enter is pressed, not on every key.
  const idIn = (name, placeholder, extra = {}) => h("input", { name, placeholder, value: f[name], autocomplete: "off", ...extra,
    onchange: (e) => filter({ [name]: e.target.value.trim() }) });
  const tools = h("datalist", { id: "tools-seen" });
  const count = h("span", { class: "muted", id: "runs-count" });
  const tbody = h("tbody");
  const pager = h("div", { class: "pager" });
  root.append(
    h("section", { class: "card" },
      h("div", { class: "toolbar" },
        h("h2", {}, "Runs"),
        sel("status", [["", "all states"], ...["queued", "running", "paused", "retrying", "completed", "failed", "cancelled"].map((s) => [s, s])]),
        sel("kind", [["", "ion and RTP"], ["ion", "ion"], ["rtp", "RTP"]]),
        idIn("tool", "tool", { list: "tools-seen" }), tools, idIn("lot", "lot"), count),
      h("table", { id: "runs", class: "grid" },
        h("thead", {}, h("tr", {}, ["Run", "Kind", "Tool", "Lot", "User", "State", "E40", "Progress", "Step", "Alerts", "Age"].map((c) => h("th", {}, c)))),
        tbody),
      pager));

  let toolNames = "";
  function draw() {
    const names = [...list.tools].sort();
    if (names.join() !== toolNames) {
      toolNames = names.join();
      tools.replaceChildren(...names.map((t) => h("option", { value: t })));
    }
    const shown = list.rows;
    // Rows are kept and only their changed cells rewritten: a busy stream
    // then costs a few text updates, not a new table.
    const trs = shown.map(rowFor);
    const order = shown.map((r) => r.run_id).join();
    if (order !== drawnOrder) { tbody.replaceChildren(...trs); drawnOrder = order; }
    const ids = new Set(shown.map((r) => r.run_id));
    for (const id of rowEls.keys()) if (!ids.has(id)) rowEls.delete(id);
    const first = page() * PAGE;
    count.textContent = (shown.length ? `${first + 1}–${first + shown.length} of ${list.total} runs` : `${list.total} runs`) +
      (conn.error ? " (" + conn.error + ")" : conn.loaded ? "" : " (loading…)");
    count.dataset.total = String(list.total);
    pager.replaceChildren(
      h("button", { id: "page-newer", disabled: page() === 0, onclick: newer }, "‹ newer"),
      h("span", {}, ` page ${page() + 1} of ${Math.max(1, Math.ceil(list.total / PAGE))} `),
      h("button", { id: "page-older", disabled: !list.next, onclick: older }, "older ›"));
    if (!shown.length) { tbody.replaceChildren(h("tr", {}, h("td", { colSpan: 11, class: "muted" }, conn.loaded ? "No runs." : "Loading runs…"))); drawnOrder = ""; }
  }

  const rowEls = new Map();
  let drawnOrder = "";
  function rowFor(r) {
    let row = rowEls.get(r.run_id);
    if (!row) {
      const cells = Array.from({ length: 11 }, () => h("td"));
      cells[0].append(h("a", { href: "#/run/" + r.run_id }, r.run_id));
      cells[9].className = "num";
      cells[6].className = "e40";
      row = { tr: h("tr", { dataset: { run: r.run_id }, onclick: () => { location.hash = "#/run/" + r.run_id; } }, cells), cells, last: [] };
      rowEls.set(r.run_id, row);
    }
    const v = [null, r.kind, r.tool || "—", r.lot || "", r.user || "—", r.status, r.e40 || "", Math.round(r.progress || 0), r.step || "", String(r.alerts || 0), ago(r.created)];
    for (let i = 1; i < v.length; i++) {
      if (row.last[i] === v[i]) continue;
      row.last[i] = v[i];
      const td = row.cells[i];
      if (i === 3) td.replaceChildren(v[i] ? h("a", { href: "#/lot/" + encodeURIComponent(v[i]), class: "lot-link", onclick: (e) => e.stopPropagation() }, v[i]) : "—");
      else if (i === 5) td.replaceChildren(statusPill(v[i]));
      else if (i === 7) td.replaceChildren(progressBar(r.progress));
      else td.textContent = v[i];
    }
    row.cells[10].title = r.created || "";
    return row.tr;
  }

  // Redraw at most four times a second: enough to watch runs progress,
  // and the page stays idle however busy the organisation's stream is.
  let timer = 0;
  const soon = () => { if (!timer) timer = setTimeout(() => { timer = 0; draw(); }, 250); };
  draw();
  if (conn.loaded) read().catch(() => {}); // back on the list: what changed while away
  const unsub = subscribe(soon);
  const tick = setInterval(draw, 30000); // ages
  return () => { unsub(); clearInterval(tick); clearTimeout(timer); };
}
