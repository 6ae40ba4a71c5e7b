"""The reconciler: fuse every investigator's evidence into ranked, calibrated hypotheses.

A service's score is the weighted sum, over signal kinds, of the strongest evidence of that kind
for it (so ten metrics moving count once, as one kind of signal), minus what argues against it
(topology says its symptoms are explained by a callee). Scores become probabilities by a softmax
that includes a "none of these" candidate, so a weak field of hypotheses stays unsure.

Layered verification decides `sufficient`: at least `min_independent_kinds` kinds read straight
from sources (metrics, logs, traces, changes, alerts; never a model's or a human's word) must
support the top hypothesis, no strong
evidence may contradict it, and its probability must clear `min_probability`. Otherwise the
diagnosis says what is missing, and the engine hands the incident to a human.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from selfheal import model
from selfheal.diagnose import base
from selfheal.diagnose import window as window_mod

ACTION_FAMILY: dict[model.FaultKind, model.ActionKind | None] = {
    model.FaultKind.BAD_DEPLOY: model.ActionKind.ROLLBACK,
    model.FaultKind.CONFIG: model.ActionKind.CONFIG_REVERT,
    model.FaultKind.MEMORY_LEAK: model.ActionKind.RESTART,
    model.FaultKind.HUNG: model.ActionKind.RESTART,
    model.FaultKind.CRASH: model.ActionKind.RESTART,
    model.FaultKind.OVERLOAD: model.ActionKind.SCALE,
    model.FaultKind.CACHE: model.ActionKind.CACHE_FLUSH,
    model.FaultKind.CERTIFICATE: model.ActionKind.CERT_RENEW,
    model.FaultKind.CREDENTIAL: model.ActionKind.CREDENTIAL_ROTATE,
}
"""The action family that fixes a fault; faults without a safe generic fix map to None."""

CAUSAL_CHANGES = frozenset({model.FaultKind.BAD_DEPLOY, model.FaultKind.CONFIG})
GENERIC = frozenset({model.FaultKind.LATENCY, model.FaultKind.UNKNOWN})
"""Symptoms every sick service shows; a more specific fault with support wins over them."""
DIRECT = frozenset({model.SignalKind.METRICS, model.SignalKind.LOGS, model.SignalKind.TRACES})


def is_against(item: model.Evidence) -> bool:
    """Evidence that says the service is a victim, not the cause (`base.Against`)."""
    return base.is_against(item)


@dataclasses.dataclass(frozen=True)
class _Candidate:
    service: str
    score: float
    fault: model.FaultKind
    mechanism: model.FaultKind
    support: tuple[model.Evidence, ...]
    against: tuple[model.Evidence, ...]


def _best_by_kind(items: Sequence[model.Evidence]) -> dict[model.SignalKind, model.Evidence]:
    best: dict[model.SignalKind, model.Evidence] = {}
    for item in items:
        if item.kind not in best or item.strength > best[item.kind].strength:
            best[item.kind] = item
    return best


def choose_fault(
    support: Sequence[model.Evidence], settings: window_mod.Settings
) -> tuple[model.FaultKind, model.FaultKind]:
    """(fault, mechanism): a deploy or config change confirmed by a direct signal is the cause.

    Otherwise the fault is the weighted vote of the supporting evidence; `mechanism` is the vote
    of the direct signals alone (what the service is doing wrong, e.g. leaking memory).
    """
    votes: dict[model.FaultKind, float] = {}
    direct_votes: dict[model.FaultKind, float] = {}
    for item in support:
        if item.fault is model.FaultKind.UNKNOWN or item.kind is model.SignalKind.TOPOLOGY:
            continue
        weight = settings.kind_weights.get(item.kind, 0.0) * item.strength
        if item.fault in GENERIC:
            weight *= settings.generic_fault_discount
        votes[item.fault] = votes.get(item.fault, 0.0) + weight
        if item.kind in DIRECT:
            direct_votes[item.fault] = direct_votes.get(item.fault, 0.0) + weight
    mechanism = max(direct_votes, key=lambda f: direct_votes[f], default=model.FaultKind.UNKNOWN)
    direct_ok = any(i.kind in DIRECT and i.strength >= settings.support_strength for i in support)
    changes = [
        i
        for i in support
        if i.kind is model.SignalKind.CHANGES
        and i.fault in CAUSAL_CHANGES
        and i.strength >= settings.support_strength
    ]
    if changes and direct_ok:
        return max(changes, key=lambda i: i.strength).fault, mechanism
    fault = max(votes, key=lambda f: votes[f], default=model.FaultKind.UNKNOWN)
    return fault, mechanism


def _candidates(
    evidence: Sequence[model.Evidence], settings: window_mod.Settings
) -> list[_Candidate]:
    ok = [e for e in evidence if e.status is model.EvidenceStatus.OK and e.service]
    out = []
    for service in sorted({e.service for e in ok}):
        mine = [e for e in ok if e.service == service]
        support = tuple(e for e in mine if not is_against(e))
        against = tuple(e for e in mine if is_against(e))
        best = _best_by_kind(support)
        score = sum(settings.kind_weights.get(k, 0.0) * e.strength for k, e in best.items())
        score -= settings.against_weight * max((e.strength for e in against), default=0.0)
        fault, mechanism = choose_fault(support, settings)
        out.append(_Candidate(service, score, fault, mechanism, support, against))
    return out


def _probabilities(scores: Sequence[float], settings: window_mod.Settings) -> list[float]:
    logits = [s / settings.temperature for s in scores]
    null = settings.null_score / settings.temperature
    peak = max([*logits, null])
    exps = [math.exp(v - peak) for v in logits]
    total = sum(exps) + math.exp(null - peak)
    # Never certain: what no investigator can see (a cause outside the window, a service not
    # instrumented) keeps a sliver of probability; scaling keeps the odds between hypotheses.
    return [v / total * settings.max_probability for v in exps]


def _contradictions(
    candidate: _Candidate,
    evidence: Sequence[model.Evidence],
    victims: frozenset[str],
    settings: window_mod.Settings,
) -> tuple[model.Evidence, ...]:
    """Strong direct evidence that points at another service (not a known victim) instead."""
    supported = {e.kind for e in candidate.support if e.strength >= settings.support_strength}
    out = []
    by_kind = _best_by_kind(
        [
            e
            for e in evidence
            if e.status is model.EvidenceStatus.OK
            and e.service
            and e.service != candidate.service
            and e.service not in victims
            and e.kind in window_mod.INDEPENDENT_KINDS
            and not is_against(e)
        ]
    )
    for kind, item in sorted(by_kind.items()):
        if kind not in supported and item.strength >= settings.contradiction_strength:
            out.append(item)
    return tuple(out)


def _summary(candidate: _Candidate, probability: float, settings: window_mod.Settings) -> str:
    best = _best_by_kind(candidate.support)
    real = sorted(k for k in best if k not in (model.SignalKind.HUMAN, model.SignalKind.MODEL))
    solid = [k for k in real if best[k].strength >= settings.support_strength]
    parts = [f"{candidate.service}: {candidate.fault.value} (p={probability:.2f})"]
    if candidate.mechanism not in (candidate.fault, model.FaultKind.UNKNOWN):
        parts.append(f"mechanism {candidate.mechanism.value}")
    if real:
        parts.append("supported by " + ", ".join(f"{k.value} {best[k].strength:.2f}" for k in real))
    if candidate.against:
        parts.append("against: " + "; ".join(e.observation for e in candidate.against))
    human = [e for e in candidate.support if e.kind is model.SignalKind.HUMAN]
    if human:
        verdict = "supported by real evidence" if solid else "not supported by any real evidence"
        parts.append(f"theory ({human[0].observation}) {verdict}")
    proposed = [e for e in candidate.support if e.kind is model.SignalKind.MODEL]
    if proposed:
        # Layered verification: a model's hypothesis counts only once real signals confirm it.
        confirmed = [k for k in solid if k in window_mod.INDEPENDENT_KINDS]
        verdict = (
            "confirmed by " + " and ".join(k.value for k in confirmed)
            if len(confirmed) >= settings.min_independent_kinds
            else "not confirmed by enough independent evidence"
        )
        parts.append(f"model hypothesis ({proposed[0].observation}) {verdict}")
    return "; ".join(parts)


def reconcile(
    incident_id: model.IncidentId,
    at: float,
    evidence: Sequence[model.Evidence],
    settings: window_mod.Settings,
) -> model.Diagnosis:
    """Ranked hypotheses, layered verification and what is missing, from all the evidence."""
    candidates = _candidates(evidence, settings)
    probabilities = _probabilities([c.score for c in candidates], settings)
    victims = frozenset(
        c.service for c in candidates for e in c.against if e.strength >= settings.support_strength
    )
    ranked = sorted(
        zip(candidates, probabilities, strict=True), key=lambda cp: (-cp[1], cp[0].service)
    )[: settings.max_hypotheses]
    hypotheses = []
    for candidate, probability in ranked:
        against = candidate.against + _contradictions(candidate, evidence, victims, settings)
        hypotheses.append(
            model.Hypothesis(
                service=candidate.service,
                fault=candidate.fault,
                action_family=ACTION_FAMILY.get(candidate.fault),
                probability=probability,
                evidence_for=candidate.support,
                evidence_against=against,
                summary=_summary(candidate, probability, settings),
            )
        )
    missing = [
        f"{e.kind.value}: {e.observation}"
        for e in evidence
        if e.status is not model.EvidenceStatus.OK
        and e.kind not in (model.SignalKind.HUMAN, model.SignalKind.MODEL)
    ]
    sufficient = False
    if not hypotheses:
        missing.append("no evidence points at any service")
    else:
        top = hypotheses[0]
        best = _best_by_kind(
            [e for e in top.evidence_for if e.kind in window_mod.INDEPENDENT_KINDS]
        )
        strong = sorted(k for k, e in best.items() if e.strength >= settings.support_strength)
        kinds = sorted(
            k for k, e in best.items() if e.strength >= settings.corroboration_strength
        )
        if not strong:
            kinds = []  # corroboration needs something strong to corroborate
        strong_against = [
            e for e in top.evidence_against if e.strength >= settings.contradiction_strength
        ]
        if len(kinds) < settings.min_independent_kinds:
            need = f"need {settings.min_independent_kinds} independent kinds of signal"
            if kinds:
                named = " and ".join(k.value for k in kinds)
                weak = sorted(
                    f"{k.value} {e.strength:.3f}"
                    for k, e in best.items()
                    if k not in kinds and e.strength > 0.0
                )
                below = (
                    f" ({', '.join(weak)} below {settings.corroboration_strength})"
                    if weak
                    else ""
                )
                missing.append(f"only {named} support {top.service}{below}: {need}")
            else:
                missing.append(f"no direct signal supports {top.service} strongly: {need}")
        for item in strong_against:
            where = f" at {item.service}" if item.service != top.service else ""
            missing.append(
                f"{item.kind.value} contradicts {top.service}{where}: {item.observation}"
            )
        if top.probability < settings.min_probability:
            missing.append(
                f"top hypothesis {top.service} has probability {top.probability:.2f} "
                f"< {settings.min_probability}"
            )
        sufficient = (
            len(kinds) >= settings.min_independent_kinds
            and not strong_against
            and top.probability >= settings.min_probability
        )
    return model.Diagnosis(
        incident_id=incident_id,
        at=at,
        hypotheses=tuple(hypotheses),
        sufficient=sufficient,
        missing=tuple(missing),
        evidence=tuple(evidence),
    )
