"""The scribe: writes an incident's postmortem from its ledger entries alone.

Pure: the same ledger gives the same Markdown, so a postmortem can be regenerated (and
checked) from the tamper-evident record at any time. Called by the runtime when an incident
ends, resolved or escalated.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from selfheal import model


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _clock(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%H:%M:%S")


def _stamp(t: float) -> str:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _first(entries: Sequence[model.LedgerEntry], kind: str) -> Mapping[str, Any] | None:
    return next((e.payload for e in entries if e.kind == kind), None)


def _describe_action(a: Mapping[str, Any]) -> str:
    params = ", ".join(f"{k}={v}" for k, v in a.get("params", []))
    return f"{a.get('kind')} {a.get('service')}" + (f" ({params})" if params else "")


def _timeline_line(e: model.LedgerEntry) -> str:
    p = e.payload
    if e.kind == "incident.opened":
        inc = p["incident"]
        return f"Incident opened: {inc['title']}"
    if e.kind == "diagnosis":
        hyps = p["diagnosis"]["hypotheses"]
        if not hyps:
            return "Diagnosis: no hypothesis"
        h = hyps[0]
        return f"Diagnosis: {h['service']} {h['fault']} (p={h['probability']:.2f})"
    if e.kind == "plan":
        steps = "; ".join(_describe_action(s) for s in p["plan"]["steps"])
        return f"Plan proposed: {steps}"
    if e.kind == "decision":
        d = p["decision"]
        return f"Policy gate: {d['verdict']} by rule `{d['rule']}`"
    if e.kind == "execution.intent":
        return f"About to run ({p['phase']}): {_describe_action(p['action'])}"
    if e.kind == "execution.result":
        x = p["execution"]
        return f"Ran ({p['phase']}): {x['status']} — {x['detail']}"
    if e.kind in ("verification", "verification.canary"):
        v = p["verification"]
        name = "Canary check" if e.kind.endswith("canary") else "Verification"
        return f"{name}: {'passed' if v['passed'] else 'FAILED'}"
    if e.kind == "outcome":
        return "Resolved and verified"
    if e.kind == "escalation":
        return f"Escalated to a human: {p['reason']}"
    if e.kind == "signal.related":
        return (f"Joined: {p['summary']}" if "incident" not in p
                else f"Merged in: incident {p['incident']} ({p['summary']})")
    if e.kind == "trust":
        return (f"Trust of {p['agent']} in {p['action']}: {p['outcome']}, score "
                f"{p['score']:.2f}" + (" (demoted)" if p.get("demoted") else ""))
    if e.kind == "resumed":
        return f"Resumed after a restart: the {p['phase']} phase of execution {p['execution']}"
    if e.kind == "service.drained":
        return _drained_line(p)
    if e.kind == "service.undrained":
        return _undrained_line(p)
    return e.kind


def _drained_line(p: Mapping[str, Any]) -> str:
    svc, region, caller = p.get("service", "?"), p.get("to_region"), p.get("caller")
    if not region:  # an entry from before the drain named its region
        return f"{svc} drained: {p.get('why', 'routed around')}"
    return (f"{svc} drained: every replica dark, callers shifted to {region}"
            + (f" ({caller})" if caller else ""))


def _undrained_line(p: Mapping[str, Any]) -> str:
    svc, reason = p.get("service", "?"), p.get("reason", "up again")
    if reason == "up again":
        return f"{svc} back: up again"
    return f"{svc} no longer drained: {reason}"


_MECHANISMS = ("memory_leak", "latency", "errors", "crash", "overload", "config", "hung")


def root_cause(top: Mapping[str, Any] | None,
               recent_changes: Sequence[Mapping[str, Any]] = ()) -> str:
    """One sentence a human can repeat: what broke, why, and how sure we are."""
    if top is None:
        return "Unknown: no hypothesis was supported by the evidence."
    service, fault = top["service"], top["fault"]
    summary = str(top.get("summary", ""))
    mechanism = next((m for m in _MECHANISMS if f"mechanism {m}" in summary), "")
    how = f" ({mechanism.replace('_', ' ')})" if mechanism else ""
    deploy = next((c for c in reversed(recent_changes) if c["service"] == service
                   and c["kind"] == "deploy"), None)
    if fault == "bad_deploy" and deploy is not None:
        return (f"The deploy of {service} v{deploy['to_version']} by {deploy['who']} at "
                f"{_clock(deploy['t'])} UTC broke {service}{how}; v{deploy['from_version']} "
                f"ran fine before it.")
    return f"{service}: {fault.replace('_', ' ')}{how}."


def postmortem(incident: model.Incident, entries: Sequence[model.LedgerEntry],
               topology: Mapping[str, Sequence[str]]) -> str:
    diag = (_first(entries, "diagnosis") or {}).get("diagnosis", {})
    hyps = diag.get("hypotheses", [])
    top = hyps[0] if hyps else None
    plan = (_first(entries, "plan") or {}).get("plan")
    decision = (_first(entries, "decision") or {}).get("decision")
    ver = (_first(entries, "verification") or {}).get("verification")
    canary = (_first(entries, "verification.canary") or {}).get("verification")
    escalation = _first(entries, "escalation")
    resolved = _first(entries, "outcome") is not None
    lines = [f"# Postmortem: {incident.title}", ""]
    lines += [f"- **Incident:** `{incident.id}` on `{incident.service}`, opened "
              f"{_stamp(incident.opened_at)}",
              "- **Outcome:** " + ("resolved automatically and verified" if resolved
                                   else "escalated to a human"),
              "- **Written by:** selfheal, from the ledger entries below "
              "(regenerate and compare with `selfheal ledger verify`)", ""]
    opened = _first(entries, "incident.opened") or {}
    changes = opened.get("recent_changes", [])
    lines += ["## Root cause", "", root_cause(top, changes)]
    if top is not None:
        lines += ["", f"Confidence {top['probability']:.0%}"
                  f"{'' if diag.get('sufficient') else ' — evidence insufficient to act'}. "
                  f"Reasoning: {top.get('summary', '')}"]
    if diag.get("missing"):
        lines.append("")
        lines.append("Missing evidence: " + "; ".join(diag["missing"]) + ".")
    exchange = _first(entries, "reasoner.exchange")
    if exchange is not None and exchange.get("narrative"):
        lines += ["", f"## Narrative ({exchange.get('narrative_by') or 'drafted by a model'})",
                  "", str(exchange["narrative"])]
    lines += ["", "## Timeline (UTC)", "", "| time | event |", "|---|---|"]
    events = [(e.ts, _timeline_line(e)) for e in entries if e.kind != "postmortem"]
    events += [(c["t"], f"Change: {c['what']} (by {c['who']})") for c in changes]
    for a in opened.get("incident", {}).get("anomalies", []):
        events.append((a["started_at"], f"Anomaly began: {a['explanation']}"))
    lines += [f"| {_clock(t)} | {text.replace('|', '/')} |"
              for t, text in sorted(events, key=lambda x: x[0])]
    lines += ["", "## Evidence", ""]
    if top is not None:
        for ev in top.get("evidence_for", []):
            lines.append(f"- **{ev['kind']}** ({ev['investigator']}, strength "
                         f"{ev['strength']:.2f}): {ev['observation']}  \n  query: `{ev['query']}`")
        for ev in top.get("evidence_against", []):
            lines.append(f"- against — **{ev['kind']}**: {ev['observation']}")
        others = [f"{h['service']} {h['fault']} (p={h['probability']:.2f})" for h in hyps[1:4]]
        if others:
            lines += ["", "Other hypotheses considered: " + "; ".join(others) + "."]
    else:
        lines.append("- none")
    lines += ["", "## Actions", ""]
    if plan is not None:
        lines.append(f"- Plan: {'; '.join(_describe_action(s) for s in plan['steps'])} — "
                     f"{plan['rationale']}")
        if plan.get("inverse"):
            lines.append("- Inverse (prepared before acting): "
                         + "; ".join(_describe_action(s) for s in plan["inverse"]))
    if decision is not None:
        lines.append(f"- Policy gate: **{decision['verdict']}** by rule `{decision['rule']}` "
                     f"(policy sha256 `{decision['policy_hash'][:12]}`): {decision['reason']}")
    for e in entries:
        if e.kind == "execution.result":
            x = e.payload["execution"]
            lines.append(f"- {_clock(x['started_at'])} {e.payload['phase']}: "
                         f"{_describe_action(x['action'])} → {x['status']} "
                         f"({x['finished_at'] - x['started_at']:.1f} s)")
    fix_decision = (_first(entries, "follow_up.decision") or {}).get("decision")
    if fix_decision is not None:
        lines.append(f"- Follow-up (code fix) gate: **{fix_decision['verdict']}** by rule "
                     f"`{fix_decision['rule']}`")
    if plan is None and decision is None:
        lines.append("- none: selfheal did not act")
    lines += ["", "## Verification", ""]
    for name, v in (("Canary", canary), ("Service", ver)):
        if v is None:
            continue
        lines.append(f"- {name}: **{'passed' if v['passed'] else 'failed'}**")
        lines += [f"  - {c['detail']}" for c in v["checks"]]
    if ver is None and canary is None:
        lines.append("- not reached")
    lines += ["", "## Follow-ups", ""]
    fix = next((e.payload["execution"] for e in entries if e.kind == "execution.result"
                and e.payload["execution"]["action"]["kind"] == "code_revert"
                and e.payload["execution"]["status"] == "succeeded"), None)
    # The latest word on each drained service: still routed around, or back in a path.
    undone: dict[str, str] = {}
    for e in entries:
        if e.kind == "service.drained":
            undone.pop(str(e.payload.get("service")), None)
        elif e.kind == "service.undrained" and e.payload.get("reason", "up again") != "up again":
            undone[str(e.payload.get("service"))] = str(e.payload["reason"])
    lines += _follow_ups(top, plan, escalation, topology, fix, undone)
    lines.append("")
    return "\n".join(lines)


def _follow_ups(top: Mapping[str, Any] | None, plan: Mapping[str, Any] | None,
                escalation: Mapping[str, Any] | None,
                topology: Mapping[str, Sequence[str]],
                fix: Mapping[str, Any] | None = None,
                undone: Mapping[str, str] | None = None) -> list[str]:
    """`undone`: services whose drain ended without them answering (the shift that routed
    around them was undone), with the reason."""
    out = []
    if escalation is not None:
        out.append(f"- [ ] A human must take over: {escalation['reason']}")
    if top is not None and plan is not None:
        step = plan["steps"][0]
        params = dict(step.get("params", []))
        if step["kind"] == "rollback":
            bad, good = params.get("from_version"), params.get("to_version")
            if fix is not None:
                what = str(fix["detail"]).removesuffix(": full")
                out.append(f"- [ ] Review and merge the code fix selfheal drafted ({what}), "
                           "then release a fixed version")
            else:
                out.append(f"- [ ] Revert the commit behind {step['service']} v{bad} and release "
                           "a fixed version")
            out.append(f"- [ ] Keep {step['service']} on v{good} until the fix is verified "
                       "under load")
            if top.get("fault") in ("memory_leak", "bad_deploy"):
                out.append(f"- [ ] Add a memory-growth check (RSS slope under steady load) to "
                           f"{step['service']}'s release pipeline")
        ended = undone.get(top["service"]) if undone else None
        if step["kind"] == "traffic_shift" and top.get("fault") == "unreachable" \
                and ended is not None:
            out.append(f"- [ ] {top['service']} is in {step['service']}'s request path again "
                       f"({ended}): restore it, or route around it by hand")
        elif step["kind"] == "traffic_shift" and top.get("fault") == "unreachable":
            out.append(f"- [ ] {top['service']} is still unreachable and out of every request "
                       f"path: restore it, then send {step['service']}'s calls back "
                       f"(region {params.get('to_region', '?')} carries them meanwhile)")
    callers = sorted(c for c, callees in topology.items()
                     if top is not None and top["service"] in callees)
    if callers:
        out.append(f"- [ ] Review timeouts and fallbacks of {', '.join(callers)} towards "
                   f"{top['service'] if top else ''}")
    return out or ["- none"]
