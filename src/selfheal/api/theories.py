"""Explore a theory: test a human's suspicion against the evidence an investigation gathered.

Called by the theory route (`routes_write`). The human investigator is the last one in the
registry and reasons only over the evidence before it, so adding a theory to an incident that
was already diagnosed needs no new queries: the stored evidence (less any earlier human
evidence) plus the theory's evidence, reconciled again, is what the diagnosis would say with
the theory in its window. Pure: values in, values out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from selfheal import diagnose, model
from selfheal.diagnose import base, human, reconcile


def _evidence(raw: Mapping[str, Any]) -> model.Evidence:
    # kept as diagnosis made it: evidence *against* and lines naming other services included
    return base.evidence_from_jsonable(raw)


def _services(row: Mapping[str, Any], diag: Mapping[str, Any],
              topology: Mapping[str, Iterable[str]]) -> dict[str, tuple[str, ...]]:
    names = {row["service"], *(row["detail"].get("related") or [])}
    names.update(e.get("service") or "" for e in diag.get("evidence") or [])
    names.update(h["service"] for h in diag.get("hypotheses") or [])
    for svc, callees in topology.items():
        names.add(svc)
        names.update(callees)
    names.discard("")
    return {n: tuple(topology.get(n, ())) for n in sorted(names)}


def what_if(row: Mapping[str, Any], theories: Sequence[str], now: float,
            topology: Mapping[str, Iterable[str]] | None = None) -> dict[str, Any] | None:
    """The ranking with these theories (`who: text`) added, or None before any diagnosis;
    `from_theory` and the summary are about the last theory."""
    diag = row["detail"].get("diagnosis")
    if not diag:
        return None
    prior = tuple(_evidence(e) for e in diag.get("evidence") or []
                  if e.get("investigator") != human.NAME)
    inc = model.Incident(id=model.IncidentId(row["id"]), service=row["service"],
                         opened_at=row["opened_at"], title=row["title"], anomalies=())
    window = diagnose.Window(incident=inc, start=row["opened_at"], end=now,
                             baseline_start=row["opened_at"], baseline_end=row["opened_at"],
                             metrics=None, logs=None, changes=None, spans=None,
                             topology=_services(row, diag, topology or {}),
                             theories=tuple(theories))
    settings = diagnose.DEFAULT_SETTINGS
    investigator = human.HumanInvestigator()
    added = investigator.investigate(window, prior, settings)
    # the newest theory's own evidence, to say what *it* changed
    newest = investigator.investigate(dataclasses.replace(window, theories=tuple(theories[-1:])),
                                      prior, settings)
    after = reconcile.reconcile(inc.id, now, (*prior, *added), settings)
    named = {(e.service, e.fault) for e in newest if e.status == model.EvidenceStatus.OK}
    ranked = [{"rank": i + 1, "service": h.service, "fault": h.fault.value,
               "probability": round(h.probability, 4),
               "from_theory": any(e in newest for e in h.evidence_for)}
              for i, h in enumerate(after.hypotheses[:5])]
    # Against the same evidence without any theory, so that only the theory's effect shows.
    base = reconcile.reconcile(inc.id, now, prior, settings).top
    top = after.top
    return {
        "evidence": [model.to_jsonable(e) for e in newest],
        "hypotheses": ranked,
        "sufficient": after.sufficient,
        "top_changed": (top.service, top.fault) != (base.service, base.fault)
        if top and base else top is not base,
        "theory_services": sorted({s for s, _ in named}),
        "summary": _summary(ranked, newest),
    }


def _summary(ranked: Sequence[Mapping[str, Any]], added: Sequence[model.Evidence]) -> str:
    if not any(e.status == model.EvidenceStatus.OK for e in added):
        return added[0].observation if added else "the theory added no evidence"
    mine = next((h for h in ranked if h["from_theory"]), None)
    top = ranked[0] if ranked else None
    if top is None:
        return "no hypothesis"
    lead = f"#1 is {top['service']} {top['fault']} (p={top['probability']:.2f})"
    if mine is None:
        return f"{lead}; the theory's service ranks below the top 5"
    if mine["rank"] == 1:
        return f"{lead}, supported by the theory"
    return (f"{lead}; the theory's {mine['service']} {mine['fault']} ranks #{mine['rank']} "
            f"(p={mine['probability']:.2f}): the evidence does not back it as strongly")
