"""The planner: from a diagnosis to a proposed plan of catalogue actions (never a decision).

Pure: it takes the diagnosis and the facts it needs about the platform (current and previous
versions, replica counts) as values. A plan is only a proposal until the policy gate rules on it.

The remedy follows the top hypothesis's fault. When that fault is generic (errors, latency) the
planner looks at what the hypothesis's own evidence says more precisely, and reads only its
types, never its text (an investigator that rewords an observation changes no remedy): an
investigator that saw a certificate, a credential, a config or a cache fault (`Evidence.fault`);
failures seen at a callee that other evidence finds unreachable (`diagnose.base.Names`, a fault
UNREACHABLE: route around it); a saturated service (log evidence of fault OVERLOAD, or a request
rate that rose with the latency, `Evidence.measures`). Anything else has no remedy in the
catalogue, and the incident goes to a human.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from selfheal import catalogue, model
from selfheal.diagnose import base as diagnose_base

_STATE_FAMILIES = frozenset({
    model.ActionKind.CONFIG_REVERT, model.ActionKind.CACHE_FLUSH, model.ActionKind.CERT_RENEW,
    model.ActionKind.CREDENTIAL_ROTATE, model.ActionKind.TRAFFIC_SHIFT,
})
_BY_FAULT = {
    model.FaultKind.CONFIG: model.ActionKind.CONFIG_REVERT,
    model.FaultKind.CERTIFICATE: model.ActionKind.CERT_RENEW,
    model.FaultKind.CREDENTIAL: model.ActionKind.CREDENTIAL_ROTATE,
    model.FaultKind.CACHE: model.ActionKind.CACHE_FLUSH,
}
STRONG = 0.3
"""Evidence at least this strong may choose a remedy; weaker evidence only informs."""
SURGE_FACTOR = 1.5
"""A request rate this many times its baseline, with the latency up, is a surge."""


def _ok(e: model.Evidence) -> bool:
    return e.status == model.EvidenceStatus.OK and e.strength >= STRONG


def _strong(h: model.Hypothesis) -> list[model.Evidence]:
    return [e for e in h.evidence_for if _ok(e) and e.service == h.service]


def family(h: model.Hypothesis,
           seen: Sequence[model.Evidence] = ()) -> model.ActionKind | None:
    """The action family that fixes `h`: its own, or one its evidence names precisely.

    `seen` is the rest of the diagnosis's evidence (`Diagnosis.evidence`): what it says about
    the services `h`'s failures are seen at.
    """
    if h.action_family is not None:
        return h.action_family
    strong = _strong(h)
    for e in strong:
        if e.kind is not model.SignalKind.CHANGES and e.fault in _BY_FAULT:
            return _BY_FAULT[e.fault]
    if unreachable_callees(h, seen):
        # its calls fail at an instance nothing reaches: send them to another region
        return model.ActionKind.TRAFFIC_SHIFT
    if h.fault in (model.FaultKind.LATENCY, model.FaultKind.ERRORS):
        # Saturation: more demand than the replicas can take (the rate rose with the
        # latency, or the service's logs say its pool or queue is full) is fixed by more
        # replicas.
        if any(e.kind is model.SignalKind.LOGS and e.fault is model.FaultKind.OVERLOAD
               for e in strong):
            return model.ActionKind.SCALE
        ratio = rate_ratio(h)
        if ratio is not None and ratio >= SURGE_FACTOR:
            return model.ActionKind.SCALE
    return None


def unreachable_callees(h: model.Hypothesis, seen: Sequence[model.Evidence]) -> list[str]:
    """Services `h`'s own error lines name as where its failures are seen (`Names`) that
    strong evidence in `seen` finds UNREACHABLE."""
    cut_off = {e.service for e in seen
               if _ok(e) and e.fault is model.FaultKind.UNREACHABLE and e.service != h.service}
    named = {n for e in _strong(h) if isinstance(e, diagnose_base.Names) for n in e.named}
    return sorted(named & cut_off)


def rate_ratio(h: model.Hypothesis) -> float | None:
    """How many times its baseline request rate the service now serves, if its evidence
    measured both (`model.REQUEST_RATE_BASELINE`, `model.REQUEST_RATE_NOW`)."""
    for e in _strong(h):
        was, now = e.measure(model.REQUEST_RATE_BASELINE), e.measure(model.REQUEST_RATE_NOW)
        if was is not None and now is not None:
            return now / max(was, 1e-9)
    return None


def _config_change_seen(h: model.Hypothesis) -> bool:
    return any(e.kind is model.SignalKind.CHANGES and e.fault is model.FaultKind.CONFIG
               and e.service == h.service for e in h.evidence_for)


@dataclasses.dataclass(frozen=True)
class Facts:
    """What the planner may know about the target service, gathered by the runtime."""

    service: str
    version: str
    replicas: int
    last_deploy: model.Change | None = None
    """The most recent deploy of the service (not a rollback or canary), if known."""
    failover: tuple[tuple[str, str], ...] = ()
    """(caller, region): callers that reach the service as one region of a regional
    dependency and could use that other region instead."""
    shifts: tuple[str, ...] = ()
    """Regions the service itself could send its calls to instead of an unreachable instance
    it calls (empty: it calls no such instance, and a traffic shift of it would move nothing)."""


def propose(diagnosis: model.Diagnosis, facts: Facts, plan_id: model.PlanId) -> model.Plan | None:
    """A plan for the top hypothesis, or None when nothing in the catalogue fits."""
    top = diagnosis.top
    if top is None or top.service != facts.service:
        return None
    if top.fault is model.FaultKind.UNREACHABLE:
        return _route_around(top, facts, diagnosis.incident_id, plan_id)
    fam = family(top, diagnosis.evidence)
    if fam is None:
        return None
    step: model.Action | None = None
    why = ""
    if fam in _STATE_FAMILIES:
        if fam == model.ActionKind.CONFIG_REVERT and not _config_change_seen(top):
            return None  # a config fault with no config change to take back
        if fam == model.ActionKind.TRAFFIC_SHIFT and not facts.shifts:
            return None  # its calls fail at an unreachable instance it cannot route around
        where = {"to_region": facts.shifts[0]} if fam == model.ActionKind.TRAFFIC_SHIFT else {}
        step = model.Action(fam, facts.service, model.params(**where, snapshot=plan_id))
        why = (f"{facts.service}: {top.fault.value} (p={top.probability:.2f}); "
               f"{catalogue.CATALOGUE[fam].description} — its inverse restores snapshot "
               f"{plan_id}")
    elif fam == model.ActionKind.ROLLBACK:
        # Only undo a deploy that is still live: never "roll back" to whatever ran last
        # (after a rollback that would be the bad version again).
        d = facts.last_deploy
        if d is None or d.to_version != facts.version or not d.from_version \
                or d.from_version == facts.version:
            return None
        step = model.Action(model.ActionKind.ROLLBACK, facts.service,
                            model.params(from_version=facts.version,
                                         to_version=d.from_version))
        why = (f"{facts.service} {facts.version} is the likely cause ({top.fault.value}, "
               f"p={top.probability:.2f}); return to {d.from_version}, the version that ran "
               f"before {d.who} deployed {facts.version}")
    elif fam == model.ActionKind.RESTART and top.fault in (model.FaultKind.HUNG,
                                                           model.FaultKind.CRASH):
        # Which replica is sick is the platform's to see (a health check), not diagnosis's.
        step = model.Action(fam, facts.service,
                            model.params(replica="unhealthy", snapshot=plan_id))
        why = (f"{facts.service}: {top.fault.value} (p={top.probability:.2f}); replace the "
               "replicas that fail their health check, keeping the old ones aside")
    elif fam == model.ActionKind.SCALE:
        # Each replica should carry again what it carried before the surge, but one step at
        # most doubles the service (a bigger step touches more than the service has, which
        # the blast-radius caps refuse); verification says whether it was enough.
        ratio = rate_ratio(top) or 2.0
        target = min(facts.replicas * 2, max(facts.replicas + 1,
                                             math.ceil(facts.replicas * ratio)), 16)
        step = model.Action(model.ActionKind.SCALE, facts.service,
                            model.params(from_replicas=facts.replicas, to_replicas=target))
        why = f"{facts.service} looks overloaded; scale {facts.replicas} -> {target}"
    if step is None:
        return None
    return _one_step(step, diagnosis.incident_id, plan_id, why,
                     canary=facts.replicas > 1 and step.kind == model.ActionKind.ROLLBACK)


def _one_step(step: model.Action, incident_id: model.IncidentId, plan_id: model.PlanId,
              rationale: str, canary: bool = False) -> model.Plan | None:
    """A plan of one well-formed catalogue action with its inverse prepared, or None."""
    if catalogue.validate(step) is not None:
        return None
    inv = catalogue.inverse(step)
    return model.Plan(
        id=plan_id, incident_id=incident_id, steps=(step,),
        inverse=(inv,) if inv is not None else (), rationale=rationale,
        risk=catalogue.CATALOGUE[step.kind].risk, canary=canary)


def code_fix(rollback: model.Action, incident_id: model.IncidentId,
             plan_id: model.PlanId, reason: str) -> model.Plan | None:
    """After a verified rollback from B to A, the durable fix: revert in the service's code what
    release B added over A (`vA..vB`), on a branch with a drafted pull request. It changes no
    running process; a human reviews and merges it."""
    if rollback.kind is not model.ActionKind.ROLLBACK:
        return None
    bad, good = rollback.param("from_version"), rollback.param("to_version")
    if not bad or not good:
        return None
    step = model.Action(model.ActionKind.CODE_REVERT, rollback.service,
                        model.params(commit=f"v{good}..v{bad}", incident=incident_id,
                                     reason=reason[:300], snapshot=plan_id))
    return _one_step(step, incident_id, plan_id,
                     f"make the rollback of {rollback.service} permanent in its code: revert "
                     f"what v{bad} added over v{good} on a branch, with a pull request for a "
                     "human")


def _route_around(top: model.Hypothesis, facts: Facts, incident_id: model.IncidentId,
                  plan_id: model.PlanId) -> model.Plan | None:
    """An unreachable instance is not restarted (nothing reaches it); its callers are sent to
    another region of the same dependency, when one exists. Otherwise a human decides."""
    if not facts.failover:
        return None
    caller, region = facts.failover[0]
    step = model.Action(model.ActionKind.TRAFFIC_SHIFT, caller,
                        model.params(to_region=region, snapshot=plan_id))
    return _one_step(step, incident_id, plan_id,
                     f"{top.service} is unreachable (p={top.probability:.2f}); send {caller}'s "
                     f"calls to region {region} instead — its inverse restores snapshot "
                     f"{plan_id}")
