// One incident's live story: signals, hypotheses, evidence, plan, approval, verification.
"use strict";
(function () {
  const id = decodeURIComponent(location.pathname.split("/").pop());
  const $ = k => document.getElementById(k);
  const TERMINAL = ["resolved", "escalated", "merged"];
  let current = null, timer = null, lastCharts = 0;

  function params(p) { return (p || []).map(([k, v]) => k + "=" + v).join(", "); }
  function action(a) { return a.kind + " " + a.service + (a.params && a.params.length ? " (" + params(a.params) + ")" : ""); }

  function header(inc) {
    SH.clear($("state")).appendChild(SH.state(inc.state));
    $("title").textContent = inc.title;
    document.title = "selfheal · " + inc.id + " · " + inc.state.replace("_", " ");
    const end = inc.outcome && inc.outcome.resolved_at ? inc.outcome.resolved_at : inc.updated_at;
    $("meta").textContent = inc.id + " · " + inc.service + " · opened " + SH.date(inc.opened_at) +
      " · " + (TERMINAL.includes(inc.state) ? "closed after " : "running for ") +
      SH.dur((TERMINAL.includes(inc.state) ? end : Date.now() / 1000) - inc.opened_at);
  }

  function hypotheses(inc) {
    const box = SH.clear($("hypotheses"));
    const d = inc.diagnosis;
    if (!d) { box.appendChild(SH.el("div", { class: "empty", text: "Diagnosis not run yet." })); return; }
    d.hypotheses.slice(0, 6).forEach((h, i) => {
      const ev = SH.el("ul", { class: "plain ev" },
        h.evidence_for.map(e => SH.el("li", {}, SH.el("span", { class: "ok", text: "+ " }),
          SH.el("b", { text: e.investigator + ": " }), e.observation)),
        (h.evidence_against || []).map(e => SH.el("li", {}, SH.el("span", { class: "bad", text: "− " }),
          SH.el("b", { text: e.investigator + ": " }), e.observation)));
      box.appendChild(SH.el("div", { class: "hyp" + (i === 0 ? " top" : "") },
        SH.el("span", { class: "rank", text: "#" + (i + 1) }),
        SH.el("span", { class: "name" }, h.service + " · " + h.fault.replace("_", " "),
          h.summary ? SH.el("span", { class: "muted", text: " — " + h.summary }) : null),
        SH.bar(h.probability, "p"),
        SH.el("span", { class: "mono", text: SH.pct(h.probability) }),
        i < 3 ? ev : null));
    });
    $("sufficiency").textContent = d.sufficient ? "Enough independent evidence to act on." :
      "Insufficient evidence: " + (d.missing || []).join("; ") + " — goes to a human.";
    $("sufficiency").className = d.sufficient ? "muted" : "warn";
  }

  function investigators(inc) {
    const box = SH.clear($("investigators"));
    if (!inc.investigators.length) { box.appendChild(SH.el("div", { class: "empty", text: "No evidence gathered yet." })); return; }
    for (const inv of inc.investigators) {
      const queries = [...new Set(inv.evidence.map(e => e.query))];
      const shared = queries.length === 1;
      const rows = inv.evidence.map(e => SH.el("tr", {},
        shared ? null : SH.el("td", { class: "q", text: e.query }),
        SH.el("td", {}, SH.el("span", { class: "s-" + e.status, text: e.status === "ok" ? "" : "[" + e.status.replace("_", " ") + "] " }), e.observation),
        SH.el("td", { class: "w" }, SH.bar(e.strength), SH.el("span", { class: "faint mono", text: e.strength.toFixed(2) }))));
      box.appendChild(SH.el("div", { class: "inv" }, SH.el("h3", { text: inv.name }),
        shared ? SH.el("div", { class: "q", text: "query: " + queries[0] }) : null,
        SH.el("table", {}, SH.el("thead", {}, SH.el("tr", {}, shared ? null : SH.el("th", { text: "query" }),
          SH.el("th", { text: "result" }), SH.el("th", { text: "weight" }))), SH.el("tbody", {}, rows))));
    }
  }

  function plan(inc) {
    const box = SH.clear($("plan"));
    const p = inc.plan;
    if (!p) { box.appendChild(SH.el("div", { class: "empty", text: inc.diagnosis ? "No plan (see outcome)." : "Not planned yet." })); return; }
    const blast = inc.blast.map(b => b.radius + (b.replicas !== null && b.replicas !== undefined ?
      ": " + b.replicas + " of " + b.of_replicas + " replica(s) of " + b.service : "") +
      (b.has_inverse ? "" : " — no clean inverse"));
    box.appendChild(SH.el("dl", { class: "kv" },
      SH.el("dt", { text: "steps" }), SH.el("dd", {}, p.steps.map(s => SH.el("div", { class: "mono", text: action(s) }))),
      SH.el("dt", { text: "why" }), SH.el("dd", { text: p.rationale }),
      SH.el("dt", { text: "risk" }), SH.el("dd", { class: p.risk === "low" ? "ok" : "warn", text: p.risk }),
      SH.el("dt", { text: "blast radius" }), SH.el("dd", { text: blast.join("; ") || "—" }),
      SH.el("dt", { text: "inverse" }), SH.el("dd", {}, p.inverse.length ? p.inverse.map(s => SH.el("div", { class: "mono", text: action(s) })) : SH.el("span", { class: "bad", text: "none" })),
      SH.el("dt", { text: "canary" }), SH.el("dd", { text: p.canary ? "one replica first, compared with the old ones" : "no" }),
      SH.el("dt", { text: "plan" }), SH.el("dd", { class: "mono faint", text: p.id + " by " + p.proposed_by })));
  }

  function approval(inc) {
    const a = inc.approval;
    const box = $("approval");
    if (!a || a.state !== "pending") {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    const steps = a.request.plan.steps.map(action).join("; ");
    SH.clear($("approval-what")).appendChild(SH.el("div", {},
      SH.el("b", { text: steps }), " · risk " + a.request.risk + " · inverse " +
      (a.request.inverse.map(action).join("; ") || "none") + " · needs policy role ",
      SH.el("b", { text: a.role }), " · expires " + SH.clock(a.expires_at) + " UTC (" +
      a.request.on_expiry + " on expiry)",
      SH.el("div", { class: "muted", text: "rule " + a.request.decision.rule + ": " + a.request.decision.reason })));
    const mayApprove = SH.me && (SH.me.role === "approver" || SH.me.role === "admin") &&
      SH.me.policy_roles.includes(a.role);
    $("approve").disabled = $("reject").disabled = !mayApprove;
    if (!mayApprove && SH.me) $("approval-msg").textContent = "you (" + SH.me.name + ", " + SH.me.role +
      ") cannot decide this approval";
  }

  function decision(inc) {
    const box = SH.clear($("decision"));
    for (const d of inc.decisions) {
      if (!d) continue;
      const cls = d.verdict === "allow" ? "ok" : d.verdict === "require_approval" ? "warn" : "bad";
      box.appendChild(SH.el("div", { class: "check" }, SH.el("b", { class: cls, text: d.verdict === "allow" ? "✓" : d.verdict === "require_approval" ? "…" : "✗" }),
        SH.el("span", {}, SH.el("b", { class: cls, text: d.verdict.replace("_", " ") }), " by rule ",
          SH.el("code", { text: d.rule }), " — " + d.reason,
          SH.el("span", { class: "faint mono", text: " policy " + d.policy_hash.slice(0, 12) }))));
    }
    const ex = SH.clear($("executions"));
    for (const x of inc.executions) {
      const ok = x.status === "succeeded";
      ex.appendChild(SH.el("div", { class: "check execution" }, SH.el("b", { class: ok ? "ok" : "bad", text: ok ? "✓" : "✗" }),
        SH.el("span", {}, SH.el("b", { text: (x.phase || "run") + ": " }), x.detail,
          SH.el("span", { class: "faint mono", text: " " + SH.clock(x.started_at) + "–" + SH.clock(x.finished_at) }))));
    }
    const v = SH.clear($("verification"));
    for (const [label, ver] of [["canary", inc.canary], ["verification", inc.verification]]) {
      if (!ver) continue;
      v.appendChild(SH.el("div", { class: "check", id: label === "verification" ? "verified" : null },
        SH.el("b", { class: ver.passed ? "ok" : "bad", text: ver.passed ? "✓" : "✗" }),
        SH.el("span", {}, SH.el("b", { class: ver.passed ? "ok" : "bad", text: label + (ver.passed ? " passed" : " FAILED") }),
          SH.el("span", { class: "faint mono", text: " " + SH.clock(ver.at) }))));
      for (const c of ver.checks) v.appendChild(SH.el("div", { class: "check sub muted" },
        SH.el("b", { class: c.passed ? "ok" : "bad", text: c.passed ? "·" : "✗" }), SH.el("span", { text: c.detail })));
    }
    const o = SH.clear($("outcome"));
    const out = inc.outcome;
    if (out) {
      const cls = out.resolved ? "ok" : "bad";
      o.appendChild(SH.el("div", { class: "check", id: "outcome-line" }, SH.el("b", { class: cls, text: out.resolved ? "✓" : "!" }),
        SH.el("span", {}, SH.el("b", { class: cls, text: out.resolved ? "resolved" : out.merged_into ? "merged into " : "escalated to a human" }),
          out.merged_into ? SH.el("a", { href: "/incidents/" + out.merged_into, class: "mono", text: out.merged_into }) : null,
          out.reason ? " — " + out.reason : "", out.rolled_back ? " (the action was undone)" : "")));
    }
    if (!box.childNodes.length && !ex.childNodes.length && !v.childNodes.length && !o.childNodes.length)
      box.appendChild(SH.el("div", { class: "empty", text: "Nothing decided yet." }));
  }

  function theories(inc) {
    const ul = SH.clear($("theories"));
    for (const t of inc.theories) ul.appendChild(SH.el("li", { class: "muted" },
      SH.el("span", { class: "t mono", text: SH.clock(t.ts) }), SH.el("b", { text: t.by + ": " }), t.text,
      SH.el("div", { class: "faint", text: t.note })));
  }

  function timeline(inc) {
    const tb = SH.clear($("timeline"));
    for (const e of inc.timeline) tb.appendChild(SH.el("tr", {},
      SH.el("td", { class: "t", text: SH.clock(e.ts) }), SH.el("td", { class: "t faint mono", text: "#" + e.seq }),
      SH.el("td", { class: "k", text: e.kind }), SH.el("td", { class: "muted", text: e.summary })));
  }

  async function postmortem(inc) {
    if (!inc.postmortem) return;
    try { $("postmortem").textContent = await SH.api("/api/incidents/" + inc.id + "/postmortem"); }
    catch (e) { $("postmortem").textContent = e.message; }
  }

  async function charts(force) {
    const now = Date.now();
    if (!force && now - lastCharts < 5000) return;
    lastCharts = now;
    try { Charts.render($("charts"), await SH.api("/api/incidents/" + id + "/series")); }
    catch (e) { SH.clear($("charts")).appendChild(SH.el("div", { class: "bad", text: e.message })); }
  }

  async function load() {
    let inc;
    try { inc = await SH.api("/api/incidents/" + encodeURIComponent(id)); }
    catch (e) { $("title").textContent = e.message; return; }
    const first = current === null;
    current = inc;
    header(inc); hypotheses(inc); investigators(inc); plan(inc); approval(inc);
    decision(inc); theories(inc); timeline(inc);
    postmortem(inc);
    charts(first || TERMINAL.includes(inc.state));
    document.body.dataset.state = inc.state;
  }

  function soon() { clearTimeout(timer); timer = setTimeout(load, 250); }

  async function decide(verb) {
    const msg = $("approval-msg");
    const reason = $("reason").value.trim();
    if (!reason) { msg.className = "msg bad"; msg.textContent = "a reason is required"; return; }
    $("approve").disabled = $("reject").disabled = true;
    try {
      const a = await SH.api("/api/approvals/" + current.approval.id + "/" + verb, { method: "POST", body: { reason } });
      msg.className = "msg ok";
      msg.textContent = a.state + " by " + a.decided_by + "; selfheal picks it up within a second";
      soon();
    } catch (e) {
      msg.className = "msg bad"; msg.textContent = e.message;
      $("approve").disabled = $("reject").disabled = false;
    }
  }

  $("approve").addEventListener("click", () => decide("approve"));
  $("reject").addEventListener("click", () => decide("reject"));
  $("theory-add").addEventListener("click", async () => {
    const msg = $("theory-msg");
    try {
      const r = await SH.api("/api/incidents/" + encodeURIComponent(current ? current.id : id) + "/theories", { method: "POST", body: { text: $("theory").value } });
      msg.className = "msg muted"; msg.textContent = r.note; $("theory").value = ""; soon();
    } catch (e) { msg.className = "msg bad"; msg.textContent = e.message; }
  });
  $("verify").addEventListener("click", async ev => {
    ev.preventDefault();
    const r = await SH.api("/api/ledger/verify");
    $("verify-msg").className = "msg " + (r.ok ? "ok" : "bad");
    $("verify-msg").textContent = r.ok ? "intact: " + r.entries + " entries" : "broken at #" + r.first_bad_seq + ": " + r.problem;
  });

  const feed = $("feed");
  let firstEvent = true;
  function onEvent(e) {
    if (firstEvent) { SH.clear(feed); firstEvent = false; }
    feed.insertBefore(SH.el("div", {}, SH.el("span", { class: "t", text: SH.clock(e.t) }),
      SH.el("span", { class: "s", text: e.stage }), e.message), feed.firstChild);
    soon();
    if (["act", "verify", "resolved", "undo", "canary"].includes(e.stage)) charts(true);
  }

  SH.header().then(load);
  SH.listen("incident=" + encodeURIComponent(id), onEvent);
  setInterval(() => { if (current && !TERMINAL.includes(current.state)) { load(); charts(false); } }, 10000);
})();
