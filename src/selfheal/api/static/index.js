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
  function soon() { clearTimeout(timer); timer = setTimeout(() => load().catch(() => {}), 300); }
  document.getElementById("f-state").addEventListener("change", soon);
  document.getElementById("f-q").addEventListener("input", soon);
  SH.header();
  load().catch(e => { document.getElementById("count").textContent = e.message; });
  SH.listen("", soon);
  setInterval(soon, 30000);
})();
