// The runs list: every run of the organisation, filtered and paged in the
// browser (thousands of rows cost one page of DOM), live from the store.
import { h, ago, statusPill, progressBar } from "./util.js";
import { runs, conn, subscribe } from "./store.js";

const PAGE = 50;
const filters = { status: "", kind: "", tool: "", lot: "", page: 0 };

export function mount(root) {
  const sel = (name, options) => h("select", { name, onchange: (e) => { filters[name] = e.target.value; filters.page = 0; draw(); } },
    options.map(([v, label]) => h("option", { value: v, selected: filters[name] === v }, label)));
  const toolSel = sel("tool", [["", "all tools"]]);
  const lotIn = h("input", { name: "lot", placeholder: "lot", value: filters.lot, oninput: (e) => { filters.lot = e.target.value.trim(); filters.page = 0; draw(); } });
  const count = h("span", { class: "muted", id: "runs-count" });
  const tbody = h("tbody");
  const pager = h("div", { class: "pager" });
  root.append(
    h("section", { class: "card" },
      h("div", { class: "toolbar" },
        h("h2", {}, "Runs"),
        sel("status", [["", "all states"], ...["queued", "running", "paused", "retrying", "completed", "failed", "cancelled"].map((s) => [s, s])]),
        sel("kind", [["", "ion and RTP"], ["ion", "ion"], ["rtp", "RTP"]]),
        toolSel, lotIn, count),
      h("table", { id: "runs", class: "grid" },
        h("thead", {}, h("tr", {}, ["Run", "Kind", "Tool", "Lot", "User", "State", "E40", "Progress", "Step", "Alerts", "Age"].map((c) => h("th", {}, c)))),
        tbody),
      pager));

  let tools = "";
  function draw() {
    const all = [...runs.values()];
    const names = [...new Set(all.map((r) => r.tool).filter(Boolean))].sort();
    if (names.join() !== tools) {
      tools = names.join();
      toolSel.replaceChildren(h("option", { value: "" }, "all tools"), ...names.map((t) => h("option", { value: t, selected: filters.tool === t }, t)));
    }
    const lot = filters.lot.toLowerCase();
    const rows = all.filter((r) => (!filters.status || r.status === filters.status) && (!filters.kind || r.kind === filters.kind) &&
      (!filters.tool || r.tool === filters.tool) && (!lot || (r.lot || "").toLowerCase().includes(lot)));
    rows.sort((a, b) => (a.created < b.created ? 1 : a.created > b.created ? -1 : 0));
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    filters.page = Math.min(filters.page, pages - 1);
    const shown = rows.slice(filters.page * PAGE, (filters.page + 1) * PAGE);
    // Rows are kept and only their changed cells rewritten: a busy stream
    // then costs a few text updates, not a new table.
    const trs = shown.map(rowFor);
    const order = shown.map((r) => r.run_id).join();
    if (order !== drawnOrder) { tbody.replaceChildren(...trs); drawnOrder = order; }
    for (const id of rowEls.keys()) if (!runs.has(id)) rowEls.delete(id);
    count.textContent = `${rows.length} of ${all.length} runs` + (conn.loaded ? "" : " (loading…)");
    count.dataset.total = String(all.length);
    pager.replaceChildren(
      h("button", { disabled: filters.page === 0, onclick: () => { filters.page--; draw(); } }, "‹ newer"),
      h("span", {}, ` page ${filters.page + 1} of ${pages} `),
      h("button", { disabled: filters.page >= pages - 1, onclick: () => { filters.page++; draw(); } }, "older ›"));
    if (!all.length) { tbody.replaceChildren(h("tr", {}, h("td", { colSpan: 11, class: "muted" }, conn.loaded ? "No runs yet." : "Loading runs…"))); drawnOrder = ""; }
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
    const v = [null, r.kind, r.tool || "—", r.lot || "—", r.user || "—", r.status, r.e40 || "", Math.round(r.progress || 0), r.step || "", String(r.alerts || 0), ago(r.created)];
    for (let i = 1; i < v.length; i++) {
      if (row.last[i] === v[i]) continue;
      row.last[i] = v[i];
      const td = row.cells[i];
      if (i === 5) td.replaceChildren(statusPill(v[i]));
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
  const unsub = subscribe(soon);
  const tick = setInterval(draw, 30000); // ages
  return () => { unsub(); clearInterval(tick); clearTimeout(timer); };
}
