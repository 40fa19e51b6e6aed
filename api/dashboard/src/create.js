// Create a run from a recipe. The form checks nothing itself: the server
// validates, and each field error it returns is shown next to its field.
import { h } from "./util.js";
import { api, can, ApiError } from "./api.js";

const ionFields = [
  ["species", "select", "P", ["B", "P", "As", "BF2", "In", "Sb"], ""],
  ["energy_kev", "number", 40, null, "keV (1–200)"],
  ["dose_atoms_cm2", "number", 1e15, null, "atoms/cm² (1e11–1e16)"],
  ["tilt_deg", "number", 7, null, "° (0–90)"],
  ["twist_deg", "number", 0, null, "° (0–90)"],
  ["beam_current_ma", "number", 5, null, "mA (0.1–50)"],
  ["scan_speed_mm_s", "number", 50, null, "mm/s (1–100)"],
  ["wafer_diameter_mm", "select", "300", ["100", "150", "200", "300"], "mm"],
];
const rtpFields = [
  ["segments", "json", '[{"target_temp_c": 800, "duration_s": 5, "ramp_rate_c_s": 50},\n {"target_temp_c": 1000, "duration_s": 10, "ramp_rate_c_s": 40},\n {"target_temp_c": 400, "duration_s": 10, "ramp_rate_c_s": 40}]', null, "target_temp_c °C (400–1200), duration_s s (0–300), ramp_rate_c_s °C/s"],
  ["initial_temp_c", "number", 25, null, "°C"],
  ["n2_flow_slm", "number", 10, null, "slm (0–20)"],
  ["o2_flow_slm", "number", 0, null, "slm (0–5)"],
  ["controller_type", "select", "pid", ["pid", "mpc"], ""],
  ["pid_kp", "number", 5, null, ""], ["pid_ki", "number", 0.5, null, ""], ["pid_kd", "number", 1, null, ""],
  ["ion_implant_context", "json", '{"species": "P", "energy_kev": 40, "dose_atoms_cm2": 1e15}', null, "optional: the implant this anneal activates"],
];
const common = [
  ["tool_id", "text", "", null, "optional"], ["lot_id", "text", "", null, "optional"], ["wafer_id", "text", "", null, "optional"],
  ["priority", "number", "", null, "optional"], ["comments", "text", "", null, "optional"],
];

export function mountCreate(root) {
  let kind = can("ion:create_run") ? "ion" : "rtp";
  const form = h("form", { id: "create-form", novalidate: true, onsubmit: submit });
  const notice = h("p", { class: "notice", id: "create-notice" });
  root.append(h("section", { class: "card narrow" }, h("h2", {}, "New run"),
    h("div", { class: "toolbar" }, ["ion", "rtp"].filter((k) => can(k + ":create_run")).map((k) =>
      h("label", {}, h("input", { type: "radio", name: "kind", value: k, checked: k === kind, onchange: () => { kind = k; draw(); } }), k === "ion" ? " ion implantation " : " RTP "))),
    form, notice));
  function draw() {
    const fields = [...(kind === "ion" ? ionFields : rtpFields), ...common];
    form.replaceChildren(...fields.map(([name, type, def, options, hint]) => {
      let input;
      if (type === "select") input = h("select", { name }, options.map((o) => h("option", { value: o, selected: String(def) === o }, o)));
      else if (type === "json") input = h("textarea", { name, rows: name === "segments" ? 4 : 1, dataset: { json: "1" } }, def);
      else input = h("input", { name, type: type === "number" ? "text" : "text", inputMode: type === "number" ? "decimal" : "text", value: def, dataset: { number: type === "number" ? "1" : "" } });
      return h("div", { class: "field", dataset: { field: name } }, h("label", {}, name), input, h("small", { class: "hint" }, hint),
        h("small", { class: "field-error", id: "err-" + name }));
    }), h("button", { type: "submit" }, "Create and queue"));
  }
  async function submit(e) {
    e.preventDefault();
    for (const el of form.querySelectorAll(".field-error")) el.textContent = "";
    notice.textContent = "";
    const body = {};
    for (const el of form.elements) {
      if (!el.name) continue;
      const v = el.value.trim();
      if (v === "") continue;
      if (el.dataset.json) {
        try { body[el.name] = JSON.parse(v); } catch { setError(el.name, "not valid JSON"); return; }
      } else if (el.dataset.number || el.name === "wafer_diameter_mm") body[el.name] = isNaN(Number(v)) ? v : Number(v);
      else body[el.name] = v;
    }
    try {
      const { body: r } = await api(`/api/${kind}/runs`, { method: "POST", body });
      location.hash = "#/run/" + r.run_id;
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      const unmatched = [];
      for (const f of err.fields) if (!setError(f.field, `${f.message} (got ${JSON.stringify(f.value)}, allowed ${f.allowed})`)) unmatched.push(f.field + ": " + f.message);
      notice.textContent = `${err.status}: ${err.message}` + (unmatched.length ? " — " + unmatched.join("; ") : "");
      notice.className = "notice error";
    }
  }
  function setError(field, text) {
    const base = String(field).split(/[.[]/)[0];
    const el = document.getElementById("err-" + base);
    if (!el) return false;
    el.textContent = (el.textContent ? el.textContent + "; " : "") + (base !== field ? field + ": " : "") + text;
    return true;
  }
  draw();
  return () => {};
}
