// A lot: its wafers' progress (a cassette of slots, each linked to its
// run), the aggregate results of its completed wafers, and the lot's
// actions for roles holding lot:control. Fab lots come from
// GET /api/lots/{id}; a lot id that only labels runs (no fab lot) shows
// those runs from GET /api/runs?lot_id=. Live: a message of the
// organisation's stream about one of its runs reads the lot again, at
// most once a second.
import { h, num, ago, time, statusPill, progressBar } from "./util.js";
import { api, can, ApiError, session } from "./api.js";
import { onMessage } from "./store.js";
import { resultUnits } from "./units.js";

const finished = ["completed", "failed", "cancelled", "partially_failed"];

export function mount(root, lotID) {
  const head = h("section", { class: "card lot-head", id: "lot-head" }, h("h2", {}, "Lot ", lotID));
  const notice = h("p", { class: "notice", id: "lot-notice" });
  const wafers = h("section", { class: "card", id: "lot-wafers" });
  const results = h("section", { class: "card", id: "lot-results" });
  root.append(head, wafers, results);
  let lot = null, runIDs = new Set(), timer = 0, gone = false, reads = 0;

  let fab = null; // is lotID a fab lot? Asked once, from the list, so that a label is no 404
  async function read() {
    const mine = ++reads;
    try {
      if (fab === null) fab = (await api("/api/lots")).body.lots.some((l) => l.lot_id === lotID);
      if (gone || mine !== reads) return;
      if (!fab) return adHoc();
      const { body } = await api("/api/lots/" + encodeURIComponent(lotID));
      if (gone || mine !== reads) return;
      lot = body;
      runIDs = new Set(lot.wafer_runs.filter((w) => w.run_id).map((w) => w.run_id));
      draw();
    } catch (e) {
      if (gone || mine !== reads) return;
      if (e instanceof ApiError && e.status === 404) return adHoc();
      head.replaceChildren(h("h2", {}, "Lot ", lotID), h("p", { class: "notice error" }, e.message));
    }
  }

  // adHoc shows a lot id that labels runs but is no fab lot.
  async function adHoc() {
    const { body } = await api("/api/runs?limit=100&lot_id=" + encodeURIComponent(lotID));
    if (gone) return;
    runIDs = new Set(body.runs.map((r) => r.run_id));
    head.replaceChildren(h("h2", {}, "Lot ", lotID),
      h("p", { class: "muted", id: "lot-adhoc" }, `No fab lot ${lotID} (POST /api/lots starts one): ${body.total} runs name it as their lot_id.`));
    wafers.replaceChildren(h("h3", {}, "Runs"), h("table", { class: "grid", id: "lot-runs" },
      h("thead", {}, h("tr", {}, ["Run", "Wafer", "Kind", "Tool", "State", "Progress", "Created"].map((c) => h("th", {}, c)))),
      h("tbody", {}, body.runs.map((r) => h("tr", { dataset: { run: r.run_id }, onclick: () => { location.hash = "#/run/" + r.run_id; } },
        h("td", {}, h("a", { href: "#/run/" + r.run_id }, r.run_id)), h("td", {}, r.wafer_id || "—"), h("td", {}, r.kind), h("td", {}, r.tool_id || "—"),
        h("td", {}, statusPill(r.status)), h("td", {}, progressBar(r.progress)), h("td", { title: r.created_at }, ago(r.created_at)))))));
    results.replaceChildren();
  }

  function draw() {
    const st = lot.status;
    head.replaceChildren(
      h("h2", {}, "Lot ", lotID, " ", statusPill(st), lot.production ? " " : "", lot.production ? h("span", { class: "pill" }, "production") : ""),
      h("dl", { class: "facts" }, ...[["kind", lot.kind], ["recipe", `${lot.recipe.name} v${lot.recipe.version}`], ["tool", lot.tool_id || "any"],
        ["wafers", String(lot.wafers.length)], ["created by", lot.created_by], ["created", `${time(lot.created_at)} (${ago(lot.created_at)})`],
        ["schedule", lot.schedule_id || "—"], ["counts", Object.entries(lot.counts).map(([k, n]) => `${n} ${k.replace("_", " ")}`).join(", ")]]
        .flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      h("div", { id: "lot-progress", dataset: { progress: String(Math.round(lot.progress)) } }, progressBar(lot.progress)),
      actions(st), notice);

    // The cassette: one slot per wafer, coloured by state, filled by progress.
    wafers.replaceChildren(h("h3", {}, "Wafers"),
      h("div", { class: "cassette", id: "cassette" }, lot.wafer_runs.map((w) => h(w.run_id ? "a" : "span", {
        class: "slot status-" + w.status, href: w.run_id ? "#/run/" + w.run_id : undefined,
        title: `slot ${w.slot} · ${w.wafer_id} · ${w.status}${w.current_step ? " · " + w.current_step : ""}`,
        dataset: { slot: String(w.slot), status: w.status },
      }, h("b", {}, String(w.slot)), h("i", { style: `width:${Math.max(0, Math.min(100, w.progress || 0))}%` })))),
      h("table", { class: "grid", id: "lot-wafer-table" },
        h("thead", {}, h("tr", {}, ["Slot", "Wafer", "Run", "State", "Progress", "Step", "Alerts"].map((c) => h("th", {}, c)))),
        h("tbody", {}, lot.wafer_runs.map((w) => h("tr", { dataset: { wafer: w.wafer_id }, onclick: () => { if (w.run_id) location.hash = "#/run/" + w.run_id; } },
          h("td", { class: "num" }, String(w.slot)), h("td", {}, w.wafer_id),
          h("td", {}, w.run_id ? h("a", { href: "#/run/" + w.run_id }, w.run_id) : "—"),
          h("td", {}, statusPill(w.status)), h("td", {}, progressBar(w.progress)),
          h("td", {}, w.error_message || w.current_step || ""), h("td", { class: "num" }, String(w.spc_alerts_count || 0)))))));

    // Aggregates over the completed wafers, in the units of docs/results.md.
    const keys = Object.keys(lot.results).sort();
    results.replaceChildren(h("h3", {}, "Results over completed wafers"),
      keys.length ? h("table", { class: "grid", id: "lot-results-table" },
        h("thead", {}, h("tr", {}, ["Result", "Unit", "n", "Mean", "1σ", "Min", "Max", "Range / mean"].map((c, i) => h("th", { class: i > 1 ? "num" : "" }, c)))),
        h("tbody", {}, keys.map((k) => {
          const s = lot.results[k], [unit, what] = resultUnits[k] || ["", ""];
          return h("tr", { dataset: { result: k }, title: what },
            h("td", {}, k), h("td", {}, unit), h("td", { class: "num" }, String(s.n)), h("td", { class: "num" }, num(s.mean)),
            h("td", { class: "num" }, s.n > 1 ? num(s.std) : "—"), h("td", { class: "num" }, num(s.min)), h("td", { class: "num" }, num(s.max)),
            // The spread as a share of the level: for positive quantities only
            // (a signed error near zero has no meaningful ratio).
            h("td", { class: "num" }, s.min > 0 ? num((100 * (s.max - s.min)) / s.mean, 3) + " %" : "—"));
        })))
        : h("p", { class: "muted" }, "No wafer has completed yet."));
  }

  function actions(st) {
    if (!can("lot:control")) return h("div", { class: "actions" }, h("span", { class: "muted", id: "no-lot-actions" }, `Your role (${session.me.role}) takes no actions on lots.`));
    const open = !finished.includes(st);
    const list = [
      ["pause", "Pause lot", open && !lot.paused && !lot.cancelled],
      ["resume", "Resume lot", open && lot.paused && !lot.cancelled],
      ["cancel", "Cancel lot", open && !lot.cancelled],
    ];
    return h("div", { class: "actions" }, list.map(([verb, label, ok]) => h("button", {
      class: "action", dataset: { lotAction: verb }, disabled: !ok, title: ok ? "" : `not while ${st}`,
      onclick: async (e) => {
        e.target.disabled = true;
        try {
          const { body } = await api(`/api/lots/${encodeURIComponent(lotID)}/${verb}`, { method: "POST" });
          notice.textContent = `${label}: accepted` + (body && body.wafers ? ` (${body.wafers.length} wafers)` : "");
          notice.className = "notice ok";
        } catch (err) { notice.textContent = `${label}: ${err.message}`; notice.className = "notice error"; }
        read();
      },
    }, label)));
  }

  const off = onMessage((msg) => {
    if (!msg.run_id || timer) return;
    if (!runIDs.has(msg.run_id) && msg.event !== "RunRequested") return;
    timer = setTimeout(() => { timer = 0; read(); }, 1000);
  });
  read();
  return () => { gone = true; off(); clearTimeout(timer); };
}
