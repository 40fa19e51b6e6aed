// The audit trail (GET /api/audit), for audit:view: who did what and when,
// denied attempts included, filtered and paged by cursor.
import { h, time } from "./util.js";
import { api } from "./api.js";

export function mountAudit(root) {
  const f = { user_id: "", run_id: "", type: "", since: "" };
  const cursors = [""];
  const tbody = h("tbody");
  const pager = h("div", { class: "pager" });
  const input = (k, ph, type = "text") => h("input", { name: k, placeholder: ph, type, onchange: (e) => { f[k] = e.target.value.trim(); cursors.length = 1; load(); } });
  root.append(h("section", { class: "card" },
    h("div", { class: "toolbar" }, h("h2", {}, "Audit"), input("user_id", "user"), input("run_id", "run"), input("type", "action or event type"),
      h("label", {}, "since ", input("since", "", "datetime-local"))),
    h("table", { class: "grid", id: "audit" }, h("thead", {}, h("tr", {}, ["time", "user", "role", "action", "type", "run", "job", "request", "details"].map((c) => h("th", {}, c)))), tbody),
    pager));
  let alive = true;
  async function load() {
    const q = new URLSearchParams({ limit: "50" });
    for (const [k, v] of Object.entries(f)) if (v) q.set(k, k === "since" ? new Date(v).toISOString() : v);
    if (cursors[cursors.length - 1]) q.set("cursor", cursors[cursors.length - 1]);
    try {
      const { body } = await api("/api/audit?" + q);
      if (!alive) return;
      tbody.replaceChildren(...body.entries.map((e) => h("tr", { class: e.action === "denied" ? "denied" : "" }, h("td", {}, time(e.time)), h("td", {}, e.user_id), h("td", {}, e.role),
        h("td", {}, e.action), h("td", {}, e.type), h("td", {}, e.run_id ? h("a", { href: "#/run/" + e.run_id }, e.run_id) : ""), h("td", {}, e.job_id || ""),
        h("td", { class: "muted" }, e.request_id || ""), h("td", { class: "json" }, e.details ? JSON.stringify(e.details).slice(0, 120) : ""))));
      if (!body.entries.length) tbody.replaceChildren(h("tr", {}, h("td", { colSpan: 9, class: "muted" }, "Nothing matches.")));
      pager.replaceChildren(
        h("button", { disabled: cursors.length === 1, onclick: () => { cursors.pop(); load(); } }, "‹ first pages"),
        h("button", { disabled: !body.has_more, onclick: () => { cursors.push(body.next_cursor); load(); } }, "next ›"));
    } catch (e) { tbody.replaceChildren(h("tr", {}, h("td", { colSpan: 9, class: "notice error" }, e.message))); }
  }
  load();
  return () => { alive = false; };
}
