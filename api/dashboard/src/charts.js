// Charts on uPlot: a canvas per chart, axes with units, a legend, and
// drag-to-zoom on x (double-click resets). Alerts are drawn as vertical
// markers on the time axis.
import uPlot from "uplot";
import { h, num } from "./util.js";

export const colors = ["#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2"];

function axisValues(_u, splits) { return splits.map((v) => (v === null ? "" : num(v, 3))); }

// lineChart makes a chart in parent. spec: {id, title, x: {label}, y: {label, log},
// series: [{label, color, dash, points, width, band}], markers: bool, height}.
// It returns {setData(cols), setMarkers([{x, label, severity}]), el, destroy()}.
export function lineChart(parent, spec) {
  const box = h("figure", { class: "chart", id: spec.id, dataset: { points: "0" } }, h("figcaption", {}, spec.title));
  parent.append(box);
  let markers = [];
  const width = () => Math.max(320, (box.clientWidth || parent.clientWidth || 640) - 8);
  const opts = {
    width: width(), height: spec.height || 220,
    cursor: { drag: { x: true, y: false } },
    // A single point gets a unit-wide x range, not uPlot's 0–100.
    scales: {
      x: { time: false, range: (_u, lo, hi) => (lo === hi ? [lo - 1, hi + 1] : [lo, hi]) },
      y: spec.y.log ? { distr: 3 } : { range: (_u, lo, hi) => (lo === hi ? [lo - (Math.abs(lo) * 0.05 || 1), hi + (Math.abs(hi) * 0.05 || 1)] : uPlot.rangeNum(lo, hi, 0.1, true)) },
    },
    axes: [
      { label: spec.x.label, values: axisValues, size: 40, incrs: spec.x.integer ? [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000] : undefined },
      { label: spec.y.label, values: axisValues, size: 70 },
    ],
    series: [{ label: spec.x.label, value: (_u, v) => num(v) }, ...spec.series.map((s, i) => ({
      label: s.label, stroke: s.color || colors[i % colors.length], width: s.width ?? 1.5, dash: s.dash,
      fill: s.fill, value: (_u, v) => num(v), spanGaps: false,
      points: s.points ? { show: true, size: s.points, stroke: s.color, fill: s.color } : { show: false },
      paths: s.points && !s.line ? () => null : undefined,
    }))],
    bands: spec.bands,
    hooks: {
      draw: [(u) => {
        if (spec.annotate) spec.annotate(u);
        if (!markers.length) return;
        const ctx = u.ctx;
        ctx.save();
        ctx.font = `${11 * devicePixelRatio}px sans-serif`;
        for (const m of markers) {
          const x = u.valToPos(m.x, "x", true);
          if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
          ctx.strokeStyle = m.severity === "critical" ? "#dc2626" : "#d97706";
          ctx.setLineDash([4, 3]);
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.fillStyle = ctx.strokeStyle;
          ctx.fillText(m.label, x + 3, u.bbox.top + 12 * devicePixelRatio);
        }
        ctx.restore();
      }],
    },
  };
  const empty = [[], ...spec.series.map(() => [])];
  const u = new uPlot(opts, empty, box);
  let last = empty;
  const ro = new ResizeObserver(() => u.setSize({ width: width(), height: opts.height }));
  ro.observe(parent);
  return {
    el: box, u,
    setData(cols) {
      last = cols;
      u.setData(cols, true);
      box.dataset.points = String(cols[0].length);
    },
    setMarkers(ms) {
      markers = ms;
      box.dataset.markers = String(ms.length);
      u.redraw(false);
    },
    redraw() { u.setData(last, true); },
    destroy() { ro.disconnect(); u.destroy(); },
  };
}

// heatMap draws a 2-D map (rows of values, null off the wafer) on a canvas
// with a colour bar. Returns the element.
export function heatMap(parent, { id, title, x, y, z, unit }) {
  const box = h("figure", { class: "chart heat", id }, h("figcaption", {}, title));
  const size = 300, bar = 18, pad = 36;
  const c = h("canvas", { width: size + pad + bar + 80, height: size + pad });
  box.append(c);
  parent.append(box);
  let lo = Infinity, hi = -Infinity;
  for (const row of z) for (const v of row) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (!(hi > lo)) hi = lo + 1;
  const g = c.getContext("2d");
  g.fillStyle = "#fff";
  g.fillRect(0, 0, c.width, c.height);
  const nx = x.length, ny = y.length, cw = size / nx, ch = size / ny;
  for (let j = 0; j < ny; j++) {
    for (let i = 0; i < nx; i++) {
      const v = z[j][i];
      if (v === null || v === undefined) continue;
      g.fillStyle = viridis((v - lo) / (hi - lo));
      // y grows upwards on a wafer map
      g.fillRect(pad + i * cw, (ny - 1 - j) * ch, Math.ceil(cw), Math.ceil(ch));
    }
  }
  g.fillStyle = "#333";
  g.font = "11px sans-serif";
  g.fillText(num(x[0], 3), pad, size + 14);
  g.fillText(num(x[nx - 1], 3) + " mm", pad + size - 40, size + 14);
  g.fillText("x (mm)", pad + size / 2 - 15, size + 28);
  g.save();
  g.translate(10, size / 2 + 15);
  g.rotate(-Math.PI / 2);
  g.fillText("y (mm)", 0, 0);
  g.restore();
  const bx = pad + size + 12;
  for (let k = 0; k < size; k++) {
    g.fillStyle = viridis(1 - k / size);
    g.fillRect(bx, k, bar, 1);
  }
  g.fillStyle = "#333";
  g.fillText(num(hi, 4), bx + bar + 4, 10);
  g.fillText(num((lo + hi) / 2, 4), bx + bar + 4, size / 2);
  g.fillText(num(lo, 4), bx + bar + 4, size - 2);
  g.fillText(unit, bx + bar + 4, size + 14);
  box.dataset.rendered = "true";
  box.dataset.min = String(lo);
  box.dataset.max = String(hi);
  return box;
}

// viridis approximates matplotlib's perceptually uniform colour map.
const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function viridis(t) {
  t = Math.max(0, Math.min(1, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(t)), f = t - i;
  const c = stops[i].map((a, k) => Math.round(a + (stops[i + 1][k] - a) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}
