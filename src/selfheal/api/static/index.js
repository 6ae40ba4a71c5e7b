// The incident list: filters, pending approvals on top, refreshed by the live stream.
"use strict";
(function () {
  let timer = null;
  async function load() {
    const state = document.getElementById("f-state").value;
    const q = document.getElementById("f-q").value.trim().toLowerCase();
    const data = await SH.api("/api/incidents" + (state ? "?state=" + state : ""));
    const rows = SH.clear(document.getElementById("rows"));
    const shown = data.incidents.filter(i => !q || i.title.toLowerCase().includes(q) ||
      i.service.toLowerCase().includes(q));
    document.getElementById("count").textContent = shown.length + " of " + data.total;
    if (!shown.length) rows.appendChild(SH.el("tr", {}, SH.el("td", { colspan: 7, class: "empty", text: "No incidents." })));
    for (const i of shown) {
      const top = i.top ? `${i.top.service} · ${i.top.fault} · ${SH.pct(i.top.probability)}` : "—";
      rows.appendChild(SH.el("tr", { class: "click", onclick: () => { location.href = "/incidents/" + i.id; } },
        SH.el("td", {}, SH.state(i.state)),
        SH.el("td", {}, SH.el("a", { href: "/incidents/" + i.id, class: "mono", text: i.id })),
        SH.el("td", { text: i.service }),
        SH.el("td", { text: i.title }),
        SH.el("td", { class: "muted", text: top }),
        SH.el("td", { class: "mono", text: SH.date(i.opened_at).slice(5, 19) }),
        SH.el("td", { class: "muted", text: SH.ago(i.updated_at) })));
    }
    const pend = (await SH.api("/api/approvals?state=pending")).approvals;
    const box = document.getElementById("pending");
    box.hidden = !pend.length;
    const pr = SH.clear(document.getElementById("pending-rows"));
    for (const a of pend) {
      const steps = a.request.plan.steps.map(s => s.kind + " " + s.service).join("; ");
      pr.appendChild(SH.el("tr", { class: "click", onclick: () => { location.href = "/incidents/" + a.incident_id; } },
        SH.el("td", {}, SH.el("a", { href: "/incidents/" + a.incident_id, class: "mono", text: a.incident_id })),
        SH.el("td", { text: steps }),
        SH.el("td", { class: "muted", text: "risk " + a.request.risk + " · needs role " + a.role }),
        SH.el("td", { class: "muted", text: "expires " + SH.clock(a.expires_at) + " UTC" })));
    }
  }
  async function policy() {
    const [p, t] = await Promise.all([SH.api("/api/policy"), SH.api("/api/trust")]);
    const doc = p.document;
    const box = SH.clear(document.getElementById("policy"));
    box.appendChild(SH.el("div", {}, "Policy ", SH.el("code", { text: p.source }),
      " (sha256 " + p.sha256.slice(0, 12) + ") · default mode ", SH.el("b", { text: doc.modes.default }),
      " · rules: " + (doc.rules.map(r => r.name + " → " + r.verdict).join(", ") || "none (deny)") +
      " · roles: " + Object.entries(doc.roles).map(([r, u]) => r + " = " + u.join(", ")).join("; ")));
    if (t.revoked.length) box.appendChild(SH.el("div", { class: "bad" },
      "Revoked: " + t.revoked.map(r => r.subject + " by " + r.by + " (" + r.reason + ")").join("; ")));
    const rows = SH.clear(document.getElementById("trust"));
    if (!t.trust.length) rows.appendChild(SH.el("tr", {}, SH.el("td", { colspan: 8, class: "empty", text: "No outcomes yet: trust is learned from them." })));
    for (const r of t.trust) rows.appendChild(SH.el("tr", {},
      SH.el("td", { text: r.agent }), SH.el("td", { class: "mono", text: r.action }),
      SH.el("td", { text: r.successes }), SH.el("td", { text: r.failures }), SH.el("td", { text: r.rejections }),
      SH.el("td", {}, SH.bar(r.score, "p"), SH.el("span", { class: "faint mono", text: r.score.toFixed(2) })),
      SH.el("td", { text: r.mode }), SH.el("td", { class: "muted", text: r.why })));
  }
  function soon() { clearTimeout(timer); timer = setTimeout(() => { load().catch(() => {}); policy().catch(() => {}); }, 300); }
  document.getElementById("f-state").addEventListener("change", soon);
  document.getElementById("f-q").addEventListener("input", soon);
  SH.header();
  load().catch(e => { document.getElementById("count").textContent = e.message; });
  policy().catch(() => {});
  SH.listen("", soon);
  setInterval(soon, 30000);
})();
