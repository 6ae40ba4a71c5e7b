"""Rebuilding model values from ledger payloads, for resuming an incident after a crash.

The ledger is the source of truth of what selfheal decided and did; a restarted selfheal reads
the incident's entries back into the values the workflow works with. Only the runtime uses it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from selfheal import model
from selfheal.diagnose import base as diagnose_base


def action(p: Mapping[str, Any]) -> model.Action:
    return model.Action(model.ActionKind(p["kind"]), p["service"],
                        tuple((str(k), str(v)) for k, v in p["params"]))


def plan(p: Mapping[str, Any]) -> model.Plan:
    return model.Plan(
        id=model.PlanId(p["id"]), incident_id=model.IncidentId(p["incident_id"]),
        steps=tuple(action(a) for a in p["steps"]), inverse=tuple(action(a) for a in p["inverse"]),
        rationale=p["rationale"], risk=model.RiskClass(p["risk"]), canary=p["canary"],
        proposed_by=p["proposed_by"])


def evidence(p: Mapping[str, Any]) -> model.Evidence:
    # the diagnosis' own reader: evidence *against* and lines naming other services survive
    return diagnose_base.evidence_from_jsonable(p)


def diagnosis(p: Mapping[str, Any]) -> model.Diagnosis:
    hyps = tuple(model.Hypothesis(
        service=h["service"], fault=model.FaultKind(h["fault"]),
        action_family=model.ActionKind(h["action_family"]) if h["action_family"] else None,
        probability=float(h["probability"]),
        evidence_for=tuple(evidence(e) for e in h["evidence_for"]),
        evidence_against=tuple(evidence(e) for e in h["evidence_against"]),
        summary=h.get("summary", "")) for h in p["hypotheses"])
    return model.Diagnosis(
        incident_id=model.IncidentId(p["incident_id"]), at=float(p["at"]), hypotheses=hyps,
        sufficient=bool(p["sufficient"]), missing=tuple(p["missing"]),
        evidence=tuple(evidence(e) for e in p["evidence"]))


def anomaly(p: Mapping[str, Any]) -> model.Anomaly:
    return model.Anomaly(**{**p, "id": model.AnomalyId(p["id"])})


def incident(p: Mapping[str, Any], state: model.IncidentState) -> model.Incident:
    return model.Incident(
        id=model.IncidentId(p["id"]), service=p["service"], opened_at=float(p["opened_at"]),
        title=p["title"], anomalies=tuple(anomaly(a) for a in p["anomalies"]), state=state)


def dangling_intent(entries: Sequence[model.LedgerEntry]) -> Mapping[str, Any] | None:
    """The last execution intent with no result: a platform call a crash cut short."""
    done = {e.payload["execution"]["id"] for e in entries if e.kind == "execution.result"}
    intents = [e.payload for e in entries if e.kind == "execution.intent"]
    for p in reversed(intents):
        if p["execution"] not in done:
            return dict(p)
    return None


def last(entries: Sequence[model.LedgerEntry], kind: str) -> Mapping[str, Any] | None:
    return next((e.payload for e in reversed(entries) if e.kind == kind), None)
