// SPC: run-to-run control charts per tool and parameter, with the centre
// line, control limits and each violation marked with the rule it broke;
// and the R2R threads with their EWMA state over the runs they learnt from.
import { h, num, time } from "./util.js";
import { api } from "./api.js";
import { lineChart } from "./charts.js";
import { resultUnits } from "./units.js";

const sel = { kind: "", tool: "", parameter: "" };

export function mountSPC(root) {
  const controls = h("div", { class: "toolbar" }, h("h2", {}, "SPC control charts"));
  const body = h("div", { id: "spc-charts" });
  root.append(h("section", { class: "card" }, controls, body));
  let alive = true, made = [];
  async function load() {
    let charts = [];
    try { charts = (await api("/api/spc/charts?points=500")).body.charts; }
    catch (e) { body.replaceChildren(h("p", { class: "notice error" }, e.message)); return; }
    if (!alive) return;
    const opts = (key, all) => h("select", { name: key, onchange: (e) => { sel[key] = e.target.value; draw(charts); } },
      h("option", { value: "" }, all), [...new Set(charts.map((c) => c[key === "tool" ? "tool_id" : key]))].sort().map((v) => h("option", { value: v, selected: sel[key] === v }, v || "(no tool)")));
    controls.replaceChildren(h("h2", {}, "SPC control charts"), opts("kind", "ion and RTP"), opts("tool", "all tools"), opts("parameter", "all parameters"),
      h("button", { onclick: load }, "reload"));
    draw(charts);
  }
  function draw(charts) {
    for (const c of made) c.destroy();
    made = [];
    const shown = charts.filter((c) => (!sel.kind || c.kind === sel.kind) && (!sel.tool || c.tool_id === sel.tool) && (!sel.parameter || c.parameter === sel.parameter));
    body.replaceChildren();
    if (!shown.length) body.append(h("p", { class: "muted" }, charts.length ? "No chart matches." : "No SPC charts yet: they start with the first completed runs of a tool."));
    for (const c of shown.slice(0, 12)) made.push(drawChart(body, c));
  }
  load();
  return () => { alive = false; for (const c of made) c.destroy(); };
}

function drawChart(parent, c) {
  const unit = (resultUnits[c.parameter] || [""])[0];
  const card = h("div", { class: "spc", dataset: { tool: c.tool_id, parameter: c.parameter } });
  parent.append(card);
  const L = c.limits;
  const xs = c.points.map((p) => p.index);
  const vals = c.points.map((p) => p.value);
  const byPoint = new Map();
  for (const v of c.violations) byPoint.set(v.point, [...(byPoint.get(v.point) || []), v.rule]);
  const viol = c.points.map((p) => (byPoint.has(p.index) ? p.value : null));
  const line = (v) => xs.map(() => (L ? v : null));
  const chart = lineChart(card, {
    id: `spc-${c.kind}-${c.tool_id}-${c.parameter}`,
    title: `${c.tool_id || "(no tool)"} · ${c.parameter}${unit ? " (" + unit + ")" : ""} · ${c.total_points} runs, limits from the first ${c.baseline}`,
    x: { label: "run (completed, in order)", integer: true }, y: { label: unit || c.parameter },
    series: [
      { label: "value", color: "#2563eb", points: 4, line: true },
      { label: "centre", color: "#16a34a", dash: [6, 4] },
      { label: "UCL", color: "#dc2626", dash: [4, 4] },
      { label: "LCL", color: "#dc2626", dash: [4, 4] },
      { label: "violation", color: "#dc2626", points: 9 },
    ],
    annotate: (u) => {
      const ctx = u.ctx;
      ctx.save();
      ctx.fillStyle = "#b91c1c";
      ctx.font = `${11 * devicePixelRatio}px sans-serif`;
      for (const [pt, rules] of byPoint) {
        const i = xs.indexOf(pt);
        if (i < 0) continue;
        ctx.fillText(rules.join(","), u.valToPos(pt, "x", true) + 6, u.valToPos(vals[i], "y", true) - 6);
      }
      ctx.restore();
    },
  });
  chart.setData([xs, vals, line(L && L.center), line(L && L.ucl), line(L && L.lcl), viol]);
  chart.el.dataset.violations = String(c.violations.length);
  chart.el.dataset.limits = L ? `${L.lcl},${L.center},${L.ucl}` : "";
  card.append(...[
    h("p", { class: "muted" }, L ? `centre ${num(L.center)}, UCL ${num(L.ucl)}, LCL ${num(L.lcl)}, σ ${num(L.sigma)} (${L.method}; rules ${L.rules.join(", ")})` : `collecting the baseline (${c.total_points} of ${c.baseline} runs)`),
    c.violations.length ? h("table", { class: "grid violations" }, h("thead", {}, h("tr", {}, ["point", "run", "value", "rule", "message", "time"].map((t) => h("th", {}, t)))),
      h("tbody", {}, c.violations.map((v) => h("tr", {}, h("td", { class: "num" }, v.point), h("td", {}, h("a", { href: "#/run/" + v.run_id }, v.run_id)),
        h("td", { class: "num" }, num(v.value)), h("td", { class: "rule" }, v.rule), h("td", {}, v.message), h("td", {}, time(v.time)))))) : null].filter(Boolean));
  return chart;
}

export function mountR2R(root) {
  const body = h("div", { id: "r2r-threads" });
  root.append(h("section", { class: "card" }, h("h2", {}, "Run-to-run control threads"),
    h("p", { class: "muted" }, "One EWMA controller per tool, recipe class and adjustment: the state it holds now, and the runs it learnt from (what was applied, what was measured)."), body));
  let alive = true, made = [];
  (async () => {
    let threads = [];
    try { threads = (await api("/api/r2r/threads")).body.threads; }
    catch (e) { body.replaceChildren(h("p", { class: "notice error" }, e.message)); return; }
    if (!alive) return;
    if (!threads.length) body.append(h("p", { class: "muted" }, "No R2R threads yet."));
    for (const t of threads) {
      const card = h("div", { class: "thread" }, h("h3", {}, `${t.kind} · ${t.tool_id || "(no tool)"} · ${t.recipe_class}`, h("small", { class: "muted" }, ` ${t.updates} updates`)));
      body.append(card);
      card.append(h("table", { class: "grid" }, h("thead", {}, h("tr", {}, ["adjustment", "λ", "target", "offset (EWMA state)", "n", "applied", "recommended next"].map((c) => h("th", {}, c)))),
        h("tbody", {}, Object.entries(t.controllers || {}).map(([k, e]) => h("tr", {}, h("td", {}, k), h("td", { class: "num" }, num(e.lambda)), h("td", { class: "num" }, num(e.target)),
          h("td", { class: "num" }, num(e.offset)), h("td", { class: "num" }, e.n), h("td", { class: "num" }, num(e.applied)), h("td", { class: "num" }, num((t.recommended || {})[k])))))));
      const src = t.learned_from || [];
      if (!src.length) continue;
      // The EWMA state over these runs, walked back from the state held now:
      // offset_k = λ·(measured_k − gain·applied_k) + (1 − λ)·offset_(k−1) (process/r2r).
      for (const [k, e] of Object.entries(t.controllers || {})) {
        if (!(e.lambda > 0 && e.lambda < 1) || !src.every((r) => k in (r.measured || {}) && k in (r.applied || {}))) continue;
        const g = e.gain || 1, off = new Array(src.length);
        off[src.length - 1] = e.offset;
        for (let i = src.length - 1; i > 0; i--) off[i - 1] = (off[i] - e.lambda * (src[i].measured[k] - g * src[i].applied[k])) / (1 - e.lambda);
        const rec = off.map((o) => { let u = (e.target - o) / g; if (e.max > e.min) u = Math.min(e.max, Math.max(e.min, u)); return u; });
        const c = lineChart(card, { id: `r2r-ewma-${t.tool_id}-${t.recipe_class}-${k}`.replace(/[\s/]/g, "_"),
          title: `EWMA state of ${k} after each run (λ = ${num(e.lambda)}), walked back from the state held now`,
          x: { label: "run (oldest first)", integer: true }, y: { label: k }, height: 180,
          series: [{ label: "offset", points: 4, line: true }, { label: "recommended next", color: "#16a34a", points: 4, line: true },
            { label: "measured", color: "#ea580c", dash: [4, 4] }] });
        c.setData([src.map((_, i) => i + 1), off, rec, src.map((r) => r.measured[k])]);
        made.push(c);
      }
      const keys = [...new Set(src.flatMap((s) => [...Object.keys(s.applied || {}).map((k) => "applied " + k), ...Object.keys(s.measured || {}).map((k) => "measured " + k)]))];
      for (const key of keys) {
        const [what, name] = key.split(" ");
        const c = lineChart(card, { id: `r2r-${t.tool_id}-${t.recipe_class}-${key}`.replace(/\s/g, "_"), title: `${what}: ${name} over the runs learnt from`,
          x: { label: "run (oldest first)", integer: true }, y: { label: (resultUnits[name] || [""])[0] || name }, height: 160,
          series: [{ label: key, points: 4, line: true }] });
        c.setData([src.map((_, i) => i + 1), src.map((s) => ((s[what] || {})[name] ?? null))]);
        made.push(c);
      }
    }
  })();
  return () => { alive = false; for (const c of made) c.destroy(); };
}
