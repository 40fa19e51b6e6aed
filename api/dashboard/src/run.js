// One run in detail, live from its own stream and replayable from any
// revision: the stream is replayed from revision 0 and every message is
// kept, so the scrubber can fold the first k of them and redraw the
// charts as they were at that point.
import { h, num, time, ago, statusPill, progressBar } from "./util.js";
import { api, can, wsURL, session, download } from "./api.js";
import { closeSocket } from "./store.js";
import { lineChart, heatMap } from "./charts.js";
import { resultUnits, vmUnits } from "./units.js";

const RTP_BAND_C = 5; // the ± band drawn around the RTP set-point

const hidden = new Set(["status", "progress", "current_step", "job_id", "step", "artifacts", "vm_prediction", "vm_assumptions",
  "r2r_recommendation", "r2r_applied", "warnings", "fault"]);

function newModel() {
  return { t: [], f: {}, alerts: [], status: "", progress: 0, step: "", result: null, end: null, artifacts: [], revision: -1, attempt: 0, jobId: "" };
}

function fold(m, msg) {
  const d = msg.data || {};
  if (msg.revision !== undefined) m.revision = msg.revision;
  if (d.status) m.status = d.status;
  if (d.progress !== undefined) m.progress = d.progress;
  if (d.current_step) m.step = d.current_step;
  if (d.job_id) m.jobId = d.job_id;
  switch (msg.type) {
    case "telemetry": {
      if ((d.attempt || 0) > m.attempt) { m.attempt = d.attempt; m.t = []; m.f = {}; } // a retry starts the trace again
      const ts = d.time_s || [];
      for (const [k, v] of Object.entries(d)) if (Array.isArray(v) && k !== "time_s") m.f[k] = m.f[k] || new Array(m.t.length).fill(null);
      for (let i = 0; i < ts.length; i++) {
        m.t.push(ts[i]);
        for (const k of Object.keys(m.f)) m.f[k].push(Array.isArray(d[k]) ? d[k][i] ?? null : null);
      }
      break;
    }
    case "alert":
      m.alerts.push({ x: d.time_s ?? (m.t.length ? m.t[m.t.length - 1] : 0), label: d.rule || d.source, severity: d.severity, d, ts: msg.timestamp });
      break;
    case "completed": m.result = d; if (d.artifacts && d.artifacts.length) m.artifacts = d.artifacts; break;
    case "error": case "cancelled": m.end = { type: msg.type, ...d }; break;
    default:
      if (d.artifact) m.artifacts.push(d.artifact);
  }
}

export function mount(root, runID) {
  const kind = runID.startsWith("RTP-") ? "rtp" : "ion";
  const msgs = [];
  let model = newModel(), upto = 0, follow = true, run = null, ended = false, ws = null, alive = true;

  const head = h("div", { class: "run-head" });
  const actions = h("div", { class: "actions", id: "actions" });
  const notice = h("p", { class: "notice", id: "action-notice" });
  const scrub = h("input", { type: "range", id: "scrubber", min: 0, max: 0, value: 0, step: 1 });
  const scrubLabel = h("span", { id: "scrub-label", class: "muted" });
  const live = h("button", { id: "follow", onclick: () => { follow = true; upto = msgs.length; rebuild(); } }, "Follow live");
  const chartsBox = h("div", { class: "charts" });
  const alertsBox = h("ol", { id: "alerts", class: "alerts" });
  const extras = h("div", { class: "extras" });
  const resultsBox = h("div", { id: "results" });
  const logBox = h("div", { id: "events" });

  root.append(...[
    h("section", { class: "card" }, head, actions, notice),
    h("section", { class: "card" }, h("div", { class: "toolbar" }, h("h3", {}, "Replay"), scrub, scrubLabel, live), chartsBox,
      h("h3", {}, "Alerts"), alertsBox),
    extras,
    h("section", { class: "card" }, h("h3", {}, "Results"), resultsBox),
    can("job:view_logs") ? h("section", { class: "card" }, h("h3", {}, "Event log"), logBox) : null].filter(Boolean));

  // Charts per kind; each reads the model's columns.
  const charts = [];
  const chart = (spec, cols) => { const c = lineChart(chartsBox, spec); charts.push({ c, cols }); return c; };
  if (kind === "ion") {
    chart({ id: "chart-beam", title: "Beam current", x: { label: "process time (s)" }, y: { label: "mA" },
      series: [{ label: "beam current (mA)" }] }, (m) => [m.f.beam_current_ma]);
    chart({ id: "chart-dose", title: "Integrated dose vs target", x: { label: "process time (s)" }, y: { label: "atoms/cm²" },
      series: [{ label: "integrated dose (cm⁻²)" }, { label: "target (cm⁻²)", color: "#64748b", dash: [6, 4] }] },
    (m) => [m.f.integrated_dose_atoms_cm2, m.t.map(() => (run && run.recipe ? run.recipe.dose_atoms_cm2 : null))]);
    chart({ id: "chart-pressure", title: "Chamber pressure", x: { label: "process time (s)" }, y: { label: "Torr" },
      series: [{ label: "chamber pressure (Torr)", color: "#9333ea" }] }, (m) => [m.f.chamber_pressure_torr]);
    chart({ id: "chart-temp", title: "Wafer temperature", x: { label: "process time (s)" }, y: { label: "°C" },
      series: [{ label: "wafer temperature (°C)", color: "#dc2626" }] }, (m) => [m.f.wafer_temp_c]);
  } else {
    chart({ id: "chart-temp", title: "Set-point vs measured temperature", x: { label: "process time (s)" }, y: { label: "°C" },
      series: [{ label: "set-point (°C)", color: "#64748b", dash: [6, 4] }, { label: "measured (°C)", color: "#dc2626" },
        { label: `set-point + ${RTP_BAND_C} °C`, color: "rgba(100,116,139,0.3)", width: 0.5 },
        { label: `set-point − ${RTP_BAND_C} °C`, color: "rgba(100,116,139,0.3)", width: 0.5 }],
      bands: [{ series: [3, 4], fill: "rgba(100,116,139,0.12)" }] },
    (m) => [m.f.setpoint_temp_c, m.f.measured_temp_c, (m.f.setpoint_temp_c || []).map((v) => (v === null ? null : v + RTP_BAND_C)),
      (m.f.setpoint_temp_c || []).map((v) => (v === null ? null : v - RTP_BAND_C))]);
    chart({ id: "chart-lamp", title: "Lamp power", x: { label: "process time (s)" }, y: { label: "%" },
      series: [{ label: "lamp power (%)", color: "#ea580c" }] }, (m) => [m.f.lamp_power_pct]);
    chart({ id: "chart-error", title: "Ramp error", x: { label: "process time (s)" }, y: { label: "°C" },
      series: [{ label: "set-point − measured (°C)", color: "#0891b2" }] }, (m) => [m.f.ramp_error_c]);
  }

  // Each chart redraws in a task of its own, so the main thread is never
  // held for all of them at once.
  const drawCharts = () => {
    const m = model;
    charts.forEach(({ c, cols }, i) => setTimeout(() => {
      if (!alive) return;
      const ys = cols(m).map((col) => col || m.t.map(() => null));
      c.setData([m.t.slice(), ...ys]);
      c.el.dataset.lastX = m.t.length ? String(m.t[m.t.length - 1]) : "";
      c.setMarkers(m.alerts);
    }, i));
  };

  // Redraw at most five times a second, whatever the stream's rate.
  let pending = 0;
  const render = () => { if (!pending) pending = setTimeout(() => { pending = 0; draw(); }, 200); };
  const draw = () => {
    if (!alive) return;
    drawCharts();
    drawHead();
    drawAlerts();
    drawResults();
    drawExtras();
    scrub.max = String(msgs.length);
    scrub.value = String(upto);
    const at = msgs[upto - 1];
    scrubLabel.textContent = msgs.length
      ? `event ${upto} of ${msgs.length}` + (at && at.revision !== undefined ? ` · revision ${at.revision}` : "") +
        (model.t.length ? ` · t = ${num(model.t[model.t.length - 1])} s` : "") + (follow ? (ended ? " · replayed" : " · live") : " · scrubbing")
      : "waiting for events…";
    scrub.dataset.value = String(upto);
    live.hidden = follow;
  };

  function rebuild() {
    model = newModel();
    for (let i = 0; i < upto; i++) fold(model, msgs[i]);
    render();
  }
  scrub.addEventListener("input", () => {
    upto = Number(scrub.value);
    follow = upto >= msgs.length;
    rebuild();
  });

  function drawHead() {
    const st = model.status || (run && run.status) || "";
    const r = run || {};
    const rec = r.recipe || {};
    head.replaceChildren(
      h("h2", {}, runID, " ", statusPill(st), " ", h("span", { class: "pill e40", id: "e40" }, follow ? r.e40_state || "" : ""),
        follow || !r.status ? "" : h("small", { class: "muted", id: "now" }, ` as of event ${upto}; now ${r.status}`)),
      h("dl", { class: "facts" },
        ...[["kind", kind], ["tool", r.tool_id || "—"], ["user", r.user_id || "—"], ["lot", rec.lot_id || "—"], ["wafer", rec.wafer_id || "—"],
          ["job", model.jobId || r.job_id || ""], ["created", r.created_at ? `${time(r.created_at)} (${ago(r.created_at)})` : ""],
          ["step", model.step || r.current_step || ""]].flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      progressBar(model.progress || 0));
    // Actions act on the run as it is now, not as the scrubber shows it.
    drawActions(follow ? st : r.status || st);
  }

  let actionsKey = "";
  function drawActions(st) {
    const jobId = model.jobId || (run && run.job_id);
    const list = [
      ["cancel", "Cancel", kind + ":cancel_run", ["queued", "running", "paused", "retrying"], () => api(`/api/${kind}/runs/${runID}`, { method: "DELETE" })],
      ["pause", "Pause", "run:pause", ["running"], () => api(`/api/jobs/${jobId}/pause`, { method: "POST" })],
      ["resume", "Resume", "run:pause", ["paused"], () => api(`/api/jobs/${jobId}/resume`, { method: "POST" })],
      ["retry", "Retry", "job:retry", ["failed", "cancelled"], () => api(`/api/jobs/${jobId}/retry`, { method: "POST" })],
    ].filter(([, , perm]) => can(perm));
    const key = st + "|" + list.map((a) => a[0]).join();
    if (key === actionsKey) return;
    actionsKey = key;
    actions.replaceChildren(...list.map(([name, label, , states, call]) => h("button", {
      class: "action", dataset: { action: name }, disabled: !states.includes(st),
      title: states.includes(st) ? "" : `not while ${st}`,
      onclick: async (e) => {
        e.target.disabled = true;
        try { await call(); notice.textContent = `${label}: accepted`; notice.className = "notice ok"; }
        catch (err) { notice.textContent = `${label}: ${err.message}`; notice.className = "notice error"; }
        actionsKey = "";
        render();
      },
    }, label)));
    if (!list.length) actions.replaceChildren(h("span", { class: "muted", id: "no-actions" }, `Your role (${session.me.role}) takes no actions on runs.`));
  }

  let alertsDrawn = -1;
  function drawAlerts() {
    if (alertsDrawn === model.alerts.length) return;
    alertsDrawn = model.alerts.length;
    alertsBox.replaceChildren(...model.alerts.map((a) => h("li", { class: a.severity || "" },
      h("b", {}, `t = ${num(a.x)} s `), `${a.d.source || ""} ${a.d.rule || ""} ${a.d.parameter || ""}`,
      a.d.value !== undefined ? ` = ${num(a.d.value)}` : "", `: ${a.d.message || ""}`)));
    if (!model.alerts.length) alertsBox.replaceChildren(h("li", { class: "muted" }, "No alerts."));
  }

  let resultsDrawn = null;
  function drawResults() {
    const res = model.result;
    const key = res ? "r" + upto : model.end ? "e" : "n";
    if (key === resultsDrawn) return;
    resultsDrawn = key;
    if (!res) {
      resultsBox.replaceChildren(model.end
        ? h("p", { class: "notice error" }, `${model.end.type}: ${model.end.error_message || model.end.reason || model.end.message || ""}` + (model.end.safe_state ? ` (safe state: ${model.end.safe_state})` : ""))
        : h("p", { class: "muted" }, "Results appear when the run completes."));
      return;
    }
    const table = (obj, units, id, all) => h("table", { class: "kv", id }, h("tbody", {}, Object.entries(obj)
      .filter(([k, v]) => typeof v !== "object" && (all || !hidden.has(k)))
      .map(([k, v]) => { const [u, what] = units[k] || ["", ""]; return h("tr", { dataset: { field: k } }, h("th", {}, k), h("td", { class: "num" }, num(v)), h("td", {}, u), h("td", { class: "muted" }, what)); })));
    resultsBox.replaceChildren(...[
      table(res, resultUnits, "results-table"),
      res.warnings ? h("ul", { class: "warnings" }, res.warnings.map((w) => h("li", {}, w))) : null,
      res.fault ? h("p", { class: "notice error" }, "fault: " + res.fault) : null,
      res.vm_prediction ? h("div", {}, h("h4", {}, "Virtual metrology prediction"), table(res.vm_prediction, vmUnits, "vm-table", true),
        res.vm_assumptions ? h("div", {}, h("h5", {}, "assuming"), table(res.vm_assumptions, vmUnits, "vm-assumptions", true)) : null) : null,
      res.r2r_applied || res.r2r_recommendation ? h("div", {}, h("h4", {}, "Run-to-run control"),
        res.r2r_applied ? h("div", {}, h("h5", {}, "applied to this run"), table(res.r2r_applied, vmUnits, "r2r-applied", true)) : null,
        res.r2r_recommendation ? h("div", {}, h("h5", {}, "recommended for the next run of this tool and recipe class"), table(res.r2r_recommendation, vmUnits, "r2r-next", true)) : null,
        h("p", { class: "muted" }, "Basis: the EWMA of this tool and recipe class's completed runs (see R2R).")) : null,
      model.artifacts.length ? h("div", {}, h("h4", {}, "Artifacts"), h("ul", { id: "artifacts" }, model.artifacts.map((a) => h("li", {},
        h("button", { class: "link", onclick: () => download(a.uri, a.name) }, a.name), ` ${a.content_type}, ${num(a.size / 1024, 3)} KiB`)))) : null].filter(Boolean));
  }

  // The R2R adjustments the run started with and their basis (spc:view).
  let r2rState = "";
  function drawR2R() {
    const want = model.result ? "final" : model.status && model.status !== "queued" ? "started" : "";
    if (!want || r2rState === want || r2rState === "loading" || !can("spc:view")) return;
    r2rState = "loading";
    api(`/api/runs/${runID}/r2r`).then(({ body }) => {
      if (!alive) return;
      r2rState = want;
      document.getElementById("r2r-card")?.remove();
      if (!body.started) return;
      const kv = (obj) => h("table", { class: "kv" }, h("tbody", {}, Object.entries(obj).map(([k, v]) => h("tr", {}, h("th", {}, k),
        h("td", { class: typeof v === "object" ? "json" : "num" }, typeof v === "object" ? JSON.stringify(v) : num(v)), h("td", {}, (vmUnits[k] || [""])[0])))));
      extras.append(h("section", { class: "card", id: "r2r-card" }, h("h3", {}, `R2R at the start of attempt ${body.attempt}`),
        Object.keys(body.applied).length ? kv(body.applied) : h("p", { class: "muted" }, "No adjustment applied."),
        h("h5", {}, "basis"), Object.keys(body.basis).length ? kv(body.basis) : h("p", { class: "muted" }, "No R2R state for this tool and recipe class yet.")));
    }).catch(() => { r2rState = "error"; });
  }

  // Dose map and depth profile (ion), thermal budget (RTP).
  let mapState = "", profileState = "";
  function drawExtras() {
    drawR2R();
    if (kind === "ion") {
      const dm = model.artifacts.find((a) => a.name === "dose_map.json");
      if (dm && mapState === "") {
        mapState = "loading";
        api(dm.uri).then(({ body }) => {
          if (!alive) return;
          const box = h("section", { class: "card", id: "dose-map-card" }, h("h3", {}, "Wafer dose map"));
          extras.prepend(box);
          heatMap(box, { id: "dose-map", title: "dose (atoms/cm²)", x: body.x_mm, y: body.y_mm, z: body.dose_atoms_cm2, unit: "cm⁻²" });
          const vals = body.dose_atoms_cm2.flat().filter((v) => v !== null);
          const mean = vals.reduce((a, b) => a + b, 0) / vals.length;
          const sd = Math.sqrt(vals.reduce((a, b) => a + (b - mean) ** 2, 0) / vals.length);
          box.append(h("p", { id: "uniformity" }, `mean ${num(mean)} cm⁻², uniformity (1σ) ${num((100 * sd) / mean, 3)} %` +
            (model.result ? ` (run result: ${num(model.result.dose_uniformity_pct, 3)} %)` : "")));
          mapState = "done";
        }).catch((e) => { mapState = "error: " + e.message; });
      }
      const wantProfile = model.result ? "final" : "recipe";
      if (profileState !== wantProfile && !["loading", "none", "error"].includes(profileState) && can("ion:view_run") && (model.result || profileState === "")) {
        profileState = "loading";
        api(`/api/ion/runs/${runID}/profile`).then(({ body }) => {
          if (!alive || !body.profile_1d) { profileState = "none"; return; }
          let box = document.getElementById("profile-card");
          if (box) box.remove();
          box = h("section", { class: "card", id: "profile-card" }, h("h3", {}, "Depth profile"));
          extras.append(box);
          const p = body.profile_1d;
          const c = lineChart(box, { id: "depth-profile", title: `as implanted, at the ${body.metadata.dose_basis} ${num(body.metadata.dose_atoms_cm2)} cm⁻² (${body.metadata.model})`,
            x: { label: "depth (nm)" }, y: { label: "cm⁻³", log: true },
            series: [{ label: "concentration (cm⁻³)", color: "#16a34a" }],
            annotate: (u) => {
              const x = u.valToPos(p.projected_range_nm, "x", true);
              u.ctx.save(); u.ctx.strokeStyle = "#64748b"; u.ctx.setLineDash([3, 3]); u.ctx.beginPath();
              u.ctx.moveTo(x, u.bbox.top); u.ctx.lineTo(x, u.bbox.top + u.bbox.height); u.ctx.stroke();
              u.ctx.fillStyle = "#334155"; u.ctx.fillText(`Rp ${num(p.projected_range_nm, 3)} nm`, x + 4, u.bbox.top + 14); u.ctx.restore();
            } });
          c.setData([p.depth_nm, p.concentration_cm3.map((v) => (v > 0 ? v : null))]);
          box.append(h("p", { class: "muted" }, `Rp ${num(p.projected_range_nm)} nm, ΔRp ${num(p.straggle_nm)} nm, peak ${num(body.metadata.peak_concentration_cm3)} cm⁻³ at ${num(body.metadata.peak_depth_nm)} nm`));
          profileState = model.result ? "final" : "recipe";
        }).catch(() => { profileState = "error"; });
      }
    } else if (model.result && !document.getElementById("budget-card")) {
      const r = model.result;
      extras.append(h("section", { class: "card", id: "budget-card" }, h("h3", {}, "Thermal budget"),
        h("p", { class: "big" }, `${num(r.thermal_budget)} cm²`),
        h("p", {}, `∫ D(T) dt of ${r.thermal_budget_species || "B"}: diffusion length ${num(r.diffusion_length_um)} µm, ` +
          `equivalent to ${num(r.effective_time_s)} s at the peak ${num(r.peak_temp_c)} °C`)));
    } else if (!model.result) {
      const b = document.getElementById("budget-card");
      if (b) b.remove();
    }
  }

  // The event log (raw events, paged by revision), for job:view_logs.
  const pages = [0];
  async function drawLog() {
    if (!can("job:view_logs")) return;
    const from = pages[pages.length - 1];
    try {
      const { body } = await api(`/api/runs/${runID}/events?from=${from}&limit=50`);
      if (!alive) return;
      logBox.replaceChildren(
        h("table", { class: "grid events" }, h("thead", {}, h("tr", {}, ["rev", "time", "type", "who", "data"].map((c) => h("th", {}, c)))),
          h("tbody", {}, body.events.map((e) => h("tr", {}, h("td", { class: "num" }, e.revision), h("td", {}, time(e.time)), h("td", {}, e.type),
            h("td", {}, `${e.metadata.user_id || ""} (${e.metadata.role || ""})`), h("td", { class: "json" }, JSON.stringify(e.data).slice(0, 160)))))),
        h("div", { class: "pager" },
          h("button", { disabled: pages.length === 1, onclick: () => { pages.pop(); drawLog(); } }, "‹ earlier"),
          h("span", {}, ` revisions ${from}–${body.next_from - 1} `),
          h("button", { disabled: !body.has_more, onclick: () => { pages.push(body.next_from); drawLog(); } }, "later ›"),
          h("button", { onclick: () => drawLog() }, "reload")));
    } catch (e) { logBox.replaceChildren(h("p", { class: "notice error" }, e.message)); }
  }

  function connect() {
    const sock = new WebSocket(wsURL(`/api/${kind}/stream/${runID}`, { token: session.token, from: msgs.length ? String(msgs[msgs.length - 1].revision + 1) : "" }));
    ws = sock;
    sock.onmessage = (ev) => {
      const msg = JSON.parse(ev.data);
      if (msg.type === "connected") return;
      if (msg.type === "caught_up") { render(); return; }
      if (msgs.length && msg.revision !== undefined && msg.revision <= msgs[msgs.length - 1].revision) return;
      msgs.push(msg);
      if (msg.type === "completed" || msg.type === "error" || msg.type === "cancelled") {
        ended = true;
        reload();
      }
      if (msg.type === "progress" && msg.data && msg.data.status) reload();
      if (follow) { upto = msgs.length; fold(model, msg); }
      render();
    };
    sock.onclose = (ev) => {
      if (!alive || ws !== sock) return;
      if (ev.code !== 1000 || !ended) setTimeout(() => alive && connect(), 1500); // resume after the last revision kept
    };
  }

  // reload re-reads the run's read model (state, E40, job) at most every 500 ms.
  let reloading = 0;
  function reload() {
    if (reloading) return;
    reloading = setTimeout(async () => {
      reloading = 0;
      try { run = (await api(`/api/${kind}/runs/${runID}`)).body; render(); } catch { /* next change asks again */ }
    }, 300);
  }

  (async () => {
    try { run = (await api(`/api/${kind}/runs/${runID}`)).body; }
    catch (e) { head.replaceChildren(h("h2", {}, runID), h("p", { class: "notice error" }, e.message)); return; }
    render();
    connect();
    drawLog();
  })();

  return () => { alive = false; clearTimeout(pending); closeSocket(ws); for (const { c } of charts) c.destroy(); };
}
